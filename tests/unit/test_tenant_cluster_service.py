"""The tenant-cluster service's periodic work on a SQLite database, with a backend that
only pretends to run clusters: what is metered, which jobs are told the truth, which
clusters stop when idle. (For real, sandboxed heads: tests/e2e/test_ray_jobs.py.)"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cluster.tenant import ClusterInfo, ClusterShape, ClusterStatus, TenantClusters
from control_plane.db import Database
from control_plane.job.clusters import TenantClusterService, apply_ray_status
from control_plane.kit.ids import new_id
from control_plane.migrate import upgrade
from control_plane.models import Job, Tenant
from control_plane.plan.catalog import Limit
from control_plane.usage.replicas import ReplicaMeter, Running
from tests.support import make_settings


class FakeClusters(TenantClusters):
    def __init__(self) -> None:
        self.running: dict[str, ClusterShape] = {}
        self.stopped: list[str] = []

    async def ensure(self, shape: ClusterShape) -> ClusterInfo:
        self.running[shape.tenant_id] = shape
        return await self.info(shape.tenant_id)

    async def info(self, tenant_id: str) -> ClusterInfo:
        shape = self.running.get(tenant_id)
        if shape is None:
            return ClusterInfo(tenant_id, ClusterStatus.STOPPED)
        return ClusterInfo(tenant_id, ClusterStatus.RUNNING, shape=shape, address="http://x")

    async def stop(self, tenant_id: str) -> None:
        self.running.pop(tenant_id, None)
        self.stopped.append(tenant_id)

    async def close(self) -> None:
        self.running.clear()


@dataclass
class Observed:
    reports: list[dict[str, Running]] = field(default_factory=list)

    async def observe(self, running: dict[str, Running]) -> None:
        self.reports.append(running)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clusters") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _service(db: Database, tmp_path: Path) -> tuple[TenantClusterService, FakeClusters, Observed]:
    backend, meter = FakeClusters(), Observed()
    service = TenantClusterService(
        backend=backend,
        quotas=None,  # type: ignore[arg-type]  # tick never asks for limits
        db=db,
        settings=make_settings(tmp_path, "sqlite+aiosqlite:///:memory:"),
        meter=meter,  # type: ignore[arg-type]
    )
    return service, backend, meter


async def _tenants(db: Database) -> None:
    async with db.sessionmaker.begin() as session:
        session.add_all(Tenant(id=t, name=t, slug=t.replace("_", "-")) for t in ("ten_a", "ten_b"))


def _job(tenant_id: str, status: str) -> Job:
    return Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind="ray",
        submission_id=new_id("raysubmit"),
        status=status,
        entrypoint="python x.py",
        params={},
        metrics={},
        created_by="usr_x",
    )


def test_running_clusters_are_metered_and_jobs_of_a_dead_one_fail(
    template: Path, tmp_path: Path
) -> None:
    shutil.copyfile(template, tmp_path / "atrium.db")

    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/atrium.db")
        service, backend, meter = _service(db, tmp_path)
        await _tenants(db)
        async with db.sessionmaker.begin() as session:
            orphan, done = _job("ten_b", "running"), _job("ten_b", "succeeded")
            session.add_all([orphan, done])
        backend.running["ten_a"] = ClusterShape("ten_a", cpus=4, gpus=1, idle_minutes=30)
        service.touch("ten_a")
        service._poll = _no_poll  # type: ignore[method-assign]  # nothing answers here
        await service.tick()
        assert meter.reports == [{"cluster-ten_a": Running("ten_a", "ray-cluster", 1, 4, 1)}]
        async with db.sessionmaker() as session:
            rows = {j.id: j for j in await session.scalars(select(Job))}
        assert rows[orphan.id].status == "failed"
        assert "not running" in (rows[orphan.id].message or "")
        assert rows[done.id].status == "succeeded"  # finished jobs are left alone
        assert backend.stopped == []  # ten_a was used just now
        await db.dispose()

    asyncio.run(main())


def test_an_idle_cluster_stops_and_a_busy_one_does_not(template: Path, tmp_path: Path) -> None:
    shutil.copyfile(template, tmp_path / "atrium.db")

    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/atrium.db")
        service, backend, _ = _service(db, tmp_path)
        await _tenants(db)
        async with db.sessionmaker.begin() as session:
            session.add(_job("ten_b", "running"))
        for tenant in ("ten_a", "ten_b"):
            backend.running[tenant] = ClusterShape(tenant, cpus=1, idle_minutes=0)
            service.touch(tenant)
        service._poll = _no_poll  # type: ignore[method-assign]
        await service.tick()
        assert backend.stopped == ["ten_a"]  # ten_b runs a job: it stays
        await db.dispose()

    asyncio.run(main())


async def _no_poll(info: ClusterInfo, jobs: list[Job]) -> None:
    return None


def test_rays_statuses_and_times_land_on_the_row() -> None:
    job = _job("ten_a", "queued")
    apply_ray_status(job, {"status": "RUNNING", "start_time": 1_700_000_000_000})
    assert job.status == "running" and job.started_at == datetime.fromtimestamp(1_700_000_000, UTC)
    apply_ray_status(job, {"status": "FAILED", "message": "boom", "end_time": None})
    assert job.status == "failed" and job.message == "boom" and job.ended_at is not None
    apply_ray_status(job, {"status": "SOMETHING_NEW"})
    assert job.status == "failed"  # an unknown status changes nothing


def test_cluster_seconds_are_metered_once_per_slot_under_their_own_source() -> None:
    calls: list[dict[str, Any]] = []

    class Quotas:
        async def meter(self, tenant_id: str, limit: Limit, amount: int, **kw: Any) -> None:
            calls.append({"tenant": tenant_id, "limit": limit, "amount": amount, **kw})

    now = [datetime(2026, 11, 30, 10, 0, tzinfo=UTC)]
    meter = ReplicaMeter(
        Quotas(),  # type: ignore[arg-type]
        clock=lambda: now[0],
        source="cluster",
        dimension="cluster",
    )
    running = {"cluster-ten_a": Running("ten_a", "ray-cluster", 1, 4, 0)}

    async def main() -> None:
        for _ in range(3):  # two minutes of a 4-CPU cluster, reported every minute
            await meter.observe(running)
            now[0] += timedelta(minutes=1)
        await meter.observe({})

    asyncio.run(main())
    cpu = [c for c in calls if c["limit"] is Limit.MONTHLY_CPU_HOURS]
    assert [c["amount"] for c in cpu] == [240, 240, 240]
    assert len({c["source_id"] for c in cpu}) == 3
    assert all(c["source_id"].startswith("cluster:cluster-ten_a:") for c in cpu)
    assert cpu[0]["dimensions"] == {"cluster": "ray-cluster", "cluster_id": "cluster-ten_a"}
