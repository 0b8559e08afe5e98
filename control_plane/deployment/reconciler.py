"""Drives Ray toward the deployments the database holds, and records what Ray reports.

Every few seconds (or at once when woken by a change): read every deployment, resolve
its traffic to ready versions, render the whole Serve config, apply it when it differs
from what was last applied or when Ray has lost applications (a restarted cluster),
then read the applications' status and write each deployment's status (``pending``,
``updating``, ``ready``, ``failed`` with the error) with an event on each change.
Failures to reach Ray are retried with exponential backoff; no transaction is held
open across a call to Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from cluster.rest import ClusterError, RayRest
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.deployment.render import (
    GATEWAY_APP,
    Desired,
    app_of,
    render,
)
from control_plane.deployment.repository import DeploymentRepository
from control_plane.deployment.secrets import revision
from control_plane.deployment.targets import resolve
from control_plane.errors import AtriumError
from control_plane.event.service import emit
from control_plane.kit.repository import PLATFORM
from control_plane.models import Deployment

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


class Reconciler:
    def __init__(
        self, *, db: Database, settings: Settings, cluster: RayRest, secrets_file: Path
    ) -> None:
        self._db, self._settings, self._cluster = db, settings, cluster
        self._secrets_file = secrets_file
        self._wake = asyncio.Event()
        self._applied: str | None = None
        self._auth_epoch = 0
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def identity_changed(self, _topic: str = "*") -> None:
        """A key was revoked, a user or tenant changed, a plan moved: the gateway's caches
        must forget at once. With Redis it hears it directly; without, the new epoch in
        its routing table tells it (one in-place config update)."""
        self._auth_epoch += 1
        self.wake()

    async def run_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self.reconcile_once()
                failures, self.last_error = 0, None
            except ClusterError as exc:
                failures += 1
                self.last_error = str(exc)
                log.warning("reconcile failed (attempt %d): %s", failures, exc)
            except Exception:
                failures += 1
                log.exception("reconcile failed (attempt %d)", failures)
            delay = self._settings.reconcile_seconds
            if failures:
                delay = min(MAX_BACKOFF_S, delay * 2 ** min(failures, 5))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def reconcile_once(self) -> None:
        wanted, broken = await self._desired()
        config = render(
            self._settings,
            wanted,
            secrets_file=str(self._secrets_file),
            secrets_revision=revision(self._secrets_file),
            control_url=self._settings.control_url,
            auth_epoch=self._auth_epoch,
        )
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
        apps = await self._cluster.applications()
        expected = {app["name"] for app in config["applications"]}
        if digest != self._applied or not expected <= set(apps):
            await self._cluster.apply(config)
            self._applied = digest
            apps = await self._cluster.applications()
        await self._record(wanted, broken, apps)

    async def _desired(self) -> tuple[list[Desired], dict[str, str]]:
        async with self._db.sessionmaker() as session:
            deployments = await DeploymentRepository(session, PLATFORM).all()
            wanted, broken = [], {}
            for d in deployments:
                try:
                    targets = await resolve(session, d.tenant_id, d.model_id, d.traffic)
                except AtriumError as exc:
                    broken[d.id] = exc.detail
                    continue
                wanted.append(Desired(d, targets))
        return wanted, broken

    async def _record(
        self, wanted: list[Desired], broken: dict[str, str], apps: dict[str, Any]
    ) -> None:
        gateway = apps.get(GATEWAY_APP, {})
        observed: dict[str, tuple[str, str | None]] = {k: ("failed", v) for k, v in broken.items()}
        for item in wanted:
            observed[item.deployment.id] = _status(apps.get(app_of(item.deployment), {}), gateway)
        async with self._db.sessionmaker() as session, session.begin():
            repo = DeploymentRepository(session, PLATFORM)
            for deployment in await repo.all(Deployment.id.in_(list(observed))):
                status, error = observed[deployment.id]
                _apply_status(session, deployment, status, error)


def _status(app: dict[str, Any], gateway: dict[str, Any]) -> tuple[str, str | None]:
    """(status, error) of one deployment from its Serve application's status."""
    for part in (app, gateway):
        state = part.get("status")
        if state in ("DEPLOY_FAILED", "UNHEALTHY"):
            return "failed", _message(part)
    if app.get("status") == "RUNNING" and gateway.get("status") == "RUNNING":
        return "ready", None
    return "pending", None


def _message(app: dict[str, Any]) -> str:
    parts = [app.get("message") or ""]
    for deployment in (app.get("deployments") or {}).values():
        if deployment.get("message"):
            parts.append(deployment["message"])
    text = "\n".join(p for p in parts if p).strip()
    return text[-2000:] or "the cluster reports the application as failed"


def _apply_status(session: Any, deployment: Deployment, status: str, error: str | None) -> None:
    if status == "pending":  # not there yet: pending, or updating while the old one serves
        status = "updating" if deployment.status in ("ready", "updating") else "pending"
        if deployment.observed_generation == deployment.generation and deployment.status == "ready":
            status = "ready"
    if status == "ready":
        deployment.observed_generation = deployment.generation
    if (deployment.status, deployment.error) == (status, error):
        return
    previous = deployment.status
    deployment.status, deployment.error = status, error
    if status in ("ready", "failed") and previous != status:
        emit(
            session,
            tenant_id=deployment.tenant_id,
            type=f"deployment.{status}",
            data={"id": deployment.id, "name": deployment.name, "error": error},
        )
