"""Validates uploaded versions: the real loader loads each one and predicts on a sample,
in the sandbox with a memory, CPU and time limit (``serve_apps.runtime.probe``), within
the process-wide limit on sandboxed work that uploads with ``?wait=true`` obey too.

Versions wait in the database as ``validating``; any control-plane process may take one
(a lease in ``probe_started_at``), so a restart or a crash mid-probe only delays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import anyio.to_thread
from sqlalchemy import ColumnElement, or_

from cluster.sandbox import INSTALL_HINT, Sandbox, SandboxUnavailable
from control_plane.artifact.accounting import purge
from control_plane.artifact.crypto import CorruptBlob
from control_plane.artifact.keys import DataKeys
from control_plane.artifact.store import ArtifactStore
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.kit.slots import FairSlots
from control_plane.model.repository import VersionRepository
from control_plane.models import ModelVersion
from serve_apps.runtime.probe import ProbeResult, probe
from serve_apps.runtime.scrub import scrub_paths
from serve_apps.runtime.signature import Signature

log = logging.getLogger(__name__)


class Validator:
    def __init__(
        self,
        *,
        db: Database,
        artifacts: ArtifactStore,
        data_keys: DataKeys,
        settings: Settings,
        sandbox: Sandbox,
        slots: FairSlots,
    ) -> None:
        self._db, self._artifacts, self._keys, self._settings = db, artifacts, data_keys, settings
        self._sandbox, self._slots = sandbox, slots
        self._wake = asyncio.Event()
        self._lease = timedelta(seconds=settings.probe_timeout_seconds + 60)

    def wake(self) -> None:
        """A version is waiting: look now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.validate_pending()
            except Exception:
                log.exception("validating model versions failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.probe_poll_seconds)
            self._wake.clear()

    async def validate_pending(self) -> int:
        """Validate waiting versions until none is left; how many this process did."""
        done = 0
        while claimed := await self._claim(self._settings.probe_concurrency):
            await asyncio.gather(*(self._validate(v) for v in claimed))
            done += len(claimed)
        return done

    async def validate_now(self, version_id: str) -> ModelVersion | None:
        """Validate one version in this request (or wait for whoever already is)."""
        for claimed in await self._claim(1, ModelVersion.id == version_id):
            await self._validate(claimed)
        deadline = asyncio.get_running_loop().time() + self._lease.total_seconds()
        while True:
            async with self._db.sessionmaker() as session:
                version = await VersionRepository(session, PLATFORM).get(version_id)
            if version is None or version.status != "validating":
                break
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        return version  # None: deleted meanwhile

    async def _claim(self, limit: int, *where: ColumnElement[bool]) -> list[ModelVersion]:
        now = utcnow()
        free = or_(
            ModelVersion.probe_started_at.is_(None),
            ModelVersion.probe_started_at < now - self._lease,
        )
        async with self._db.sessionmaker() as session, session.begin():
            repo = VersionRepository(session, PLATFORM)
            waiting = await repo.all(ModelVersion.status == "validating", free, *where, limit=limit)
            return [
                v
                for v in waiting
                if await repo.update_where((ModelVersion.id == v.id) & free, probe_started_at=now)
            ]

    async def _validate(self, version: ModelVersion) -> None:
        key = await self._keys.for_tenant(version.tenant_id)
        async with self._slots.slot(version.tenant_id):
            try:
                result = await anyio.to_thread.run_sync(self._probe, version, key)
            except SandboxUnavailable:  # it stays validating; the upload route said 503
                log.error("cannot validate version %s: %s", version.id, INSTALL_HINT)
                return
        await self._record(version, result)

    def _probe(self, version: ModelVersion, data_key: bytes) -> ProbeResult:
        given = Signature.model_validate(version.signature) if version.signature else None
        scratch = self._settings.home_dir / "tmp"
        try:
            with self._artifacts.decrypted(
                version.tenant_id, version.sha256, data_key, scratch=scratch
            ) as path:
                return probe(
                    version.format,
                    path,
                    given,
                    memory_mb=self._settings.probe_memory_mb,
                    timeout_s=self._settings.probe_timeout_seconds,
                    allow_pickle=self._settings.allow_pickle,
                    sandbox=self._sandbox,
                )
        except (CorruptBlob, OSError) as exc:
            log.warning("version %s: the stored artifact cannot be read: %s", version.id, exc)
            return ProbeResult(False, error=f"the stored artifact cannot be read: {_safe(exc)}")

    async def _record(self, version: ModelVersion, result: ProbeResult) -> None:
        status = "ready" if result.ok else "failed"
        async with self._db.sessionmaker() as session, session.begin():
            changed = await VersionRepository(session, version.tenant_id).update_where(
                (ModelVersion.id == version.id) & (ModelVersion.status == "validating"),
                status=status,
                error=result.error,
                signature=result.signature.model_dump() if result.signature else version.signature,
                validated_at=utcnow(),
            )
            if changed:  # else it was deleted meanwhile
                emit(
                    session,
                    tenant_id=version.tenant_id,
                    type=f"model_version.{status}",
                    data={
                        "model_id": version.model_id,
                        "version_id": version.id,
                        "version": version.version,
                        "error": result.error,
                    },
                )
        log.info(
            "model version %s (tenant %s, model %s, v%d) %s%s",
            version.id,
            version.tenant_id,
            version.model_id,
            version.version,
            "validated: ready" if result.ok else "rejected: ",
            "" if result.ok else result.error,
        )
        if not result.ok:  # a failed version keeps its row (and error), not its blob
            await purge(self._db, self._artifacts, version.tenant_id, [version.sha256])


def _safe(exc: BaseException) -> str:
    """What the tenant may read of an error: its words, no host path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return scrub_paths(str(exc))
