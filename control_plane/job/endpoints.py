"""``/api/v1/jobs`` (every job of the tenant, whatever started it) and
``/api/v1/cluster`` (the tenant's own Ray cluster)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from cluster.tenant import ClusterInfo, ClusterStatus
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, SessionDep, member
from control_plane.errors import (
    ClusterUnavailable,
    Conflict,
    NotFound,
    PlanLimitExceeded,
    QuotaExceeded,
    responses,
)
from control_plane.job.clusters import ACTIVE
from control_plane.job.ray_api import ClustersDep
from control_plane.job.repository import JobRepository
from control_plane.job.schemas import ClusterRead, ClusterResources, JobRead
from control_plane.kit.clock import utcnow
from control_plane.kit.pagination import Page, PageDep
from control_plane.models import Job

Reader = Annotated[Principal, Depends(Authorize(Action.JOBS_READ, "tenant_member"))]
Writer = Annotated[Principal, Depends(Authorize(Action.JOBS_WRITE, "tenant_member"))]

jobs = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=responses(*SIGNED_IN))
cluster = APIRouter(
    prefix="/api/v1/cluster", tags=["cluster"], responses=responses(*SIGNED_IN, ClusterUnavailable)
)


@jobs.get("", response_model=Page[JobRead])
async def list_jobs(session: SessionDep, me: Reader, page: PageDep) -> Page[JobRead]:
    """The tenant's jobs: Ray jobs submitted through `/api/v1/ray`, and built-in ones."""
    rows, cursor = await JobRepository(session, member(me)).page(page)
    return Page(items=[JobRead.model_validate(r) for r in rows], next_cursor=cursor)


@jobs.get("/{job_id}", response_model=JobRead, responses=responses(NotFound))
async def get_job(session: SessionDep, me: Reader, job_id: str) -> JobRead:
    """One job: its status as Ray last reported it, and its message."""
    return JobRead.model_validate(await _job(session, member(me), job_id))


@jobs.get(
    "/{job_id}/logs",
    response_class=PlainTextResponse,
    responses=responses(NotFound, ClusterUnavailable),
)
async def job_logs(session: SessionDep, me: Reader, job_id: str, clusters: ClustersDep) -> str:
    """The job's logs, from its cluster (while the cluster runs)."""
    job = await _job(session, member(me), job_id)
    info = await clusters.info(job.tenant_id)
    if info.status is not ClusterStatus.RUNNING:
        raise NotFound("the job's logs went with its cluster, which is no longer running")
    answer = await clusters.request(info, "GET", f"/api/jobs/{job.submission_id}/logs")
    if answer.status_code != 200:
        raise NotFound("Ray no longer has this job's logs")
    return str(answer.json().get("logs", ""))


@jobs.post("/{job_id}/cancel", response_model=JobRead, responses=responses(NotFound, Conflict))
async def cancel_job(
    session: SessionDep, me: Writer, job_id: str, clusters: ClustersDep
) -> JobRead:
    """Stop a queued or running job (Ray stops its driver and everything it started)."""
    job = await _job(session, member(me), job_id)
    if job.status not in ACTIVE:
        raise Conflict(f"the job is already {job.status}")
    info = await clusters.info(job.tenant_id)
    if info.status is ClusterStatus.RUNNING:
        await clusters.request(info, "POST", f"/api/jobs/{job.submission_id}/stop")
    job.status, job.ended_at, job.message = "cancelled", utcnow(), "cancelled by a user"
    await session.commit()
    return JobRead.model_validate(job)


@cluster.get("", response_model=ClusterRead)
async def get_cluster(me: Reader, clusters: ClustersDep, request: Request) -> ClusterRead:
    """The tenant's own Ray cluster: stopped until a job (or `start`) needs it."""
    tenant_id = member(me)
    return await _read(clusters, await clusters.info(tenant_id), tenant_id, request)


@cluster.post(
    "/start", response_model=ClusterRead, responses=responses(PlanLimitExceeded, QuotaExceeded)
)
async def start_cluster(me: Writer, clusters: ClustersDep, request: Request) -> ClusterRead:
    """Start the tenant's cluster now (jobs start it themselves); answers once it runs."""
    tenant_id = member(me)
    return await _read(clusters, await clusters.ensure(tenant_id), tenant_id, request)


@cluster.post("/stop", response_model=ClusterRead)
async def stop_cluster(me: Writer, clusters: ClustersDep, request: Request) -> ClusterRead:
    """Stop it (a running job is cancelled with it)."""
    tenant_id = member(me)
    await clusters.stop(tenant_id)
    return await _read(clusters, await clusters.info(tenant_id), tenant_id, request)


async def _job(session: SessionDep, tenant_id: str, job_id: str) -> Job:
    job = await JobRepository(session, tenant_id).get(job_id)
    if job is None:
        raise NotFound("job not found")
    return job


async def _read(
    clusters: ClustersDep, info: ClusterInfo, tenant_id: str, request: Request
) -> ClusterRead:
    shape = info.shape or await clusters.shape(tenant_id)
    stop_at = clusters.idle_stop_at(info)
    base = str(request.base_url).rstrip("/")
    return ClusterRead(
        status=info.status.value,
        resources=ClusterResources(cpus=shape.cpus, gpus=shape.gpus, memory_mb=shape.memory_mb),
        dashboard_url=f"{base}/api/v1/ray/dashboard/",
        jobs_address=f"{base}/api/v1/ray",
        started_at=info.started_at,
        idle_stop_at=None
        if stop_at is None
        else utcnow() + timedelta(seconds=max(0.0, stop_at - time.monotonic())),
        error=info.error,
    )
