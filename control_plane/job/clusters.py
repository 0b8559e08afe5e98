"""Each tenant's own Ray cluster, as the control plane runs it.

The cluster's shape comes from the tenant's plan (``max_cluster_cpus``,
``max_cluster_gpus``, memory per CPU from the settings). It is started on demand (a Ray
job, ``POST /cluster/start``) once the month's CPU hours are not spent, metered while it
runs (CPU- and GPU-seconds of its shape, a minute at a time, each minute once, through
the same meter as dedicated replicas), stopped after the plan's idle time with no job
running and no call, and the jobs table is kept in line with what Ray reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cluster.tenant import ClusterInfo, ClusterShape, ClusterStatus, TenantClusters
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.errors import ClusterUnavailable, PlanLimitExceeded
from control_plane.job.repository import JobRepository
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.models import Job
from control_plane.plan.catalog import Limit
from control_plane.quota.service import Quotas
from control_plane.usage.replicas import ReplicaMeter, Running

log = logging.getLogger(__name__)

# Ray's job statuses, in the jobs table's words
RAY_STATUS = {
    "PENDING": "queued",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "cancelled",
}
ACTIVE = ("queued", "running")


def gpus_here() -> int:
    """GPUs this machine can give a local cluster (a plan's GPUs beyond them are moot)."""
    return len([d for d in Path("/dev").glob("nvidia[0-9]*")])


@dataclass
class TenantClusterService:
    backend: TenantClusters
    quotas: Quotas
    db: Database
    settings: Settings
    meter: ReplicaMeter
    _last_used: dict[str, float] = field(default_factory=dict)
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def shape(self, tenant_id: str) -> ClusterShape:
        limits = await self.quotas.limits(tenant_id)
        cpus = limits.get(Limit.MAX_CLUSTER_CPUS)
        if cpus is not None and cpus <= 0:
            raise PlanLimitExceeded(
                "this plan has no Ray cluster (max_cluster_cpus is 0)",
                extra={"limit": Limit.MAX_CLUSTER_CPUS.value},
            )
        cpus = cpus if cpus is not None else 4.0
        gpus = int(limits.get(Limit.MAX_CLUSTER_GPUS) or 0)
        idle = limits.get(Limit.CLUSTER_IDLE_MINUTES)
        return ClusterShape(
            tenant_id=tenant_id,
            cpus=cpus,
            gpus=min(gpus, gpus_here()),
            memory_mb=int(max(1.0, cpus) * self.settings.cluster_memory_mb_per_cpu),
            idle_minutes=int(idle) if idle is not None else 30,
        )

    async def ensure(self, tenant_id: str) -> ClusterInfo:
        """The tenant's running cluster; started (after the CPU-hours check) if need be."""
        self.touch(tenant_id)
        current = await self.backend.info(tenant_id)
        if current.status is ClusterStatus.RUNNING:
            return current
        await self.quotas.ensure_left(
            tenant_id, Limit.MONTHLY_CPU_HOURS, refused="starting the Ray cluster is refused:"
        )
        try:
            started = await self.backend.ensure(await self.shape(tenant_id))
        except RuntimeError as exc:
            raise ClusterUnavailable(f"the tenant's Ray cluster did not start: {exc}") from exc
        log.info("tenant %s: Ray cluster running at %s", tenant_id, started.address)
        return started

    async def info(self, tenant_id: str) -> ClusterInfo:
        return await self.backend.info(tenant_id)

    async def stop(self, tenant_id: str) -> None:
        info = await self.backend.info(tenant_id)
        await self.backend.stop(tenant_id)
        client = self._clients.pop(info.socket or "", None) if info.socket else None
        if client is not None:
            await client.aclose()
        self._last_used.pop(tenant_id, None)
        await self._fail_orphans(tenant_id, "the tenant's Ray cluster was stopped")

    def touch(self, tenant_id: str) -> None:
        self._last_used[tenant_id] = time.monotonic()

    def idle_stop_at(self, info: ClusterInfo) -> float | None:
        """When (monotonic) an idle cluster stops, unless used before."""
        if info.status is not ClusterStatus.RUNNING or info.shape is None:
            return None
        used = self._last_used.get(info.tenant_id, time.monotonic())
        return used + info.shape.idle_minutes * 60

    async def request(
        self,
        info: ClusterInfo,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
    ) -> httpx.Response:
        """One call to the cluster's dashboard (Jobs API), with its token."""
        assert info.address is not None and info.token is not None
        sent = {**(headers or {}), "Authorization": f"Bearer {info.token}"}
        try:
            return await self._client_for(info).request(
                method, f"{info.address}{path}", content=content, headers=sent, params=params
            )
        except httpx.HTTPError as exc:
            raise ClusterUnavailable(f"the tenant's Ray cluster did not answer: {exc}") from exc

    def _client_for(self, info: ClusterInfo) -> httpx.AsyncClient:
        """A client per way in: the cluster's Unix socket, or plain TCP."""
        key = info.socket or ""
        client = self._clients.get(key)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=info.socket) if info.socket else None
            client = httpx.AsyncClient(
                timeout=self.settings.ray_proxy_timeout_seconds,
                transport=transport,
                # a fresh connection per call: the head closes idle ones whenever it likes,
                # and a POST must never land on one it is closing
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            self._clients[key] = client
        return client

    # --- the periodic work -----------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("tenant clusters: a tick failed; trying again")
            await asyncio.sleep(self.settings.job_poll_seconds)

    async def tick(self) -> None:
        """Poll active jobs, meter running clusters, stop idle ones."""
        async with self.db.sessionmaker() as session:
            active = await JobRepository(session, PLATFORM).active()
            tenants = {job.tenant_id for job in active}
            running: dict[str, Running] = {}
            for tenant_id in tenants | set(self._last_used):
                info = await self.backend.info(tenant_id)
                jobs = [j for j in active if j.tenant_id == tenant_id]
                if info.status is ClusterStatus.RUNNING and info.shape is not None:
                    running[f"cluster-{tenant_id}"] = Running(
                        tenant_id, "ray-cluster", 1, info.shape.cpus, info.shape.gpus
                    )
                    await self._poll(info, jobs)
                elif jobs:
                    why = info.error or "the tenant's Ray cluster is not running"
                    _end(jobs, "failed", f"{why}; the job was lost with it")
            await session.commit()
        await self.meter.observe(running)
        for tenant_id in list(self._last_used):
            info = await self.backend.info(tenant_id)
            stop_at = self.idle_stop_at(info)
            busy = any(j.tenant_id == tenant_id and j.status in ACTIVE for j in active)
            if busy:
                self.touch(tenant_id)
            elif stop_at is not None and time.monotonic() >= stop_at:
                log.info("tenant %s: Ray cluster idle, stopping it", tenant_id)
                await self.stop(tenant_id)

    async def _poll(self, info: ClusterInfo, jobs: list[Job]) -> None:
        for job in jobs:
            with contextlib.suppress(ClusterUnavailable):
                answer = await self.request(info, "GET", f"/api/jobs/{job.submission_id}")
                if answer.status_code == 404:
                    _end([job], "failed", "Ray no longer knows this job (its cluster restarted)")
                elif answer.status_code == 200:
                    apply_ray_status(job, answer.json())

    async def _fail_orphans(self, tenant_id: str, why: str) -> None:
        async with self.db.sessionmaker() as session:
            jobs = await JobRepository(session, tenant_id).active()
            _end(list(jobs), "cancelled", f"{why} while the job ran")
            await session.commit()

    async def close(self) -> None:
        await self.backend.close()
        for client in self._clients.values():
            await client.aclose()


def apply_ray_status(job: Job, ray: Mapping[str, Any]) -> None:
    """Copy what Ray says of a job (its ``JobDetails``) onto the row."""
    status = RAY_STATUS.get(str(ray.get("status")), job.status)
    if status != job.status:
        job.status = status
    if ray.get("message"):
        job.message = str(ray["message"])[-4000:]
    job.started_at = job.started_at or _when(ray.get("start_time"))
    if status not in ACTIVE:
        job.ended_at = job.ended_at or _when(ray.get("end_time")) or utcnow()


def _end(jobs: list[Job], status: str, message: str) -> None:
    for job in jobs:
        job.status, job.message, job.ended_at = status, message, utcnow()


def _when(epoch_ms: object) -> datetime | None:
    if not isinstance(epoch_ms, int | float) or epoch_ms <= 0:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
