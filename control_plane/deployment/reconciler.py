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
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from cluster.rest import Application, AppStatus, ClusterError, RayRest
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.deployment.render import (
    GATEWAY_APP,
    SERVER_DEPLOYMENT,
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
from control_plane.usage.replicas import ReplicaMeter, Running
from serve_apps.runtime.scrub import scrub_paths

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
GATEWAY_FAILING = "the platform's inference gateway is failing; the operators have been alerted"
ABSENT = Application()  # an application Ray does not report


class Seen(StrEnum):
    """What the cluster shows of a deployment (``updating`` is decided from the row)."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Observed:
    """A deployment's status as observed, with the error its tenant may read."""

    status: Seen
    error: str | None = None


class Reconciler:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        cluster: RayRest,
        secrets_file: Path,
        meter: ReplicaMeter | None = None,
    ) -> None:
        self._db, self._settings, self._cluster = db, settings, cluster
        self._meter = meter  # dedicated replicas' CPU/GPU-seconds, from what Ray runs
        self._secrets_file = secrets_file
        self._wake = asyncio.Event()
        self._applied: str | None = None
        self._auth_epoch = 0
        self._gateway_error: str | None = None
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
        if self._meter is not None:
            await self._meter.observe(running(wanted, apps))

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
        self, wanted: list[Desired], broken: dict[str, str], apps: dict[str, Application]
    ) -> None:
        gateway = apps.get(GATEWAY_APP, ABSENT)
        self._report_gateway(gateway)
        observed = {k: Observed(Seen.FAILED, v) for k, v in broken.items()}
        for item in wanted:
            own = item.deployment.mode == "dedicated"
            app = apps.get(app_of(item.deployment), ABSENT) if own else ABSENT
            observed[item.deployment.id] = _status(app, gateway, own=own)
        async with self._db.sessionmaker() as session, session.begin():
            repo = DeploymentRepository(session, PLATFORM)
            for deployment in await repo.all(Deployment.id.in_(list(observed))):
                _apply_status(session, deployment, observed[deployment.id])

    def _report_gateway(self, gateway: Application) -> None:
        """The shared gateway's own errors are for the operators (they may name any
        tenant's models): logged when they change, never stored on a deployment."""
        error = _message(gateway) if gateway.status.failed else None
        if error is not None and error != self._gateway_error:
            log.error("the inference gateway application is failing: %s", error)
        self._gateway_error = error


def _status(app: Application, gateway: Application, *, own: bool) -> Observed:
    """One deployment's status: a dedicated one from its own Serve application (``own``;
    the message, its paths removed, is its tenant's to read) and the gateway, a shared
    one from the gateway alone."""
    if gateway.status.failed:
        return Observed(Seen.FAILED, GATEWAY_FAILING)
    if own and app.status.failed:
        return Observed(Seen.FAILED, scrub_paths(_message(app)))
    running = AppStatus.RUNNING
    if gateway.status is running and (not own or app.status is running):
        return Observed(Seen.READY)
    return Observed(Seen.PENDING)


def running(wanted: list[Desired], apps: dict[str, Application]) -> dict[str, Running]:
    """Each dedicated deployment's replicas that Ray reports up (RUNNING, or UPDATING: up
    and taking a new config), with the CPUs and GPUs each was given."""
    out = {}
    for item in wanted:
        d = item.deployment
        if d.mode != "dedicated":
            continue
        server = apps.get(app_of(d), ABSENT).deployments.get(SERVER_DEPLOYMENT)
        up = sum(1 for state in server.replicas if state.up) if server else 0
        cpus, gpus = float(d.resources["num_cpus"]), float(d.resources["num_gpus"])
        out[d.id] = Running(d.tenant_id, d.name, up, cpus, gpus)
    return out


def _message(app: Application) -> str:
    parts = [app.message, *(d.message for d in app.deployments.values())]
    text = "\n".join(p for p in parts if p).strip()
    return text[-2000:] or "the cluster reports the application as failed"


def _stored(deployment: Deployment, seen: Seen) -> str:
    """The row's status for what the cluster shows: not there yet is ``updating`` while
    an older generation serves, and stays ``ready`` when Ray already runs this one."""
    if seen is not Seen.PENDING:
        return seen.value
    if deployment.status == "ready" and deployment.observed_generation == deployment.generation:
        return "ready"
    return "updating" if deployment.status in ("ready", "updating") else "pending"


def _apply_status(session: AsyncSession, deployment: Deployment, observed: Observed) -> None:
    status, error = _stored(deployment, observed.status), observed.error
    if status == "ready":
        deployment.observed_generation = deployment.generation
    if (deployment.status, deployment.error) == (status, error):
        return
    previous = deployment.status
    deployment.status, deployment.error = status, error
    if status in ("ready", "failed") and previous != status:
        log.info(
            "deployment %s (tenant %s, %s) is %s%s",
            deployment.name,
            deployment.tenant_id,
            deployment.id,
            status,
            f": {error}" if error else "",
        )
        emit(
            session,
            tenant_id=deployment.tenant_id,
            type=f"deployment.{status}",
            data={"id": deployment.id, "name": deployment.name, "error": error},
        )
