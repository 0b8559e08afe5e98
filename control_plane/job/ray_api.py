"""The Ray Jobs REST API, tenant-scoped: ``ray job submit --address
http://HOST:8080/api/v1/ray --headers '{"Authorization": "Bearer KEY"}' ...`` and
``JobSubmissionClient(address, headers=...)`` work unmodified.

Each call is authenticated here (``jobs:read`` / ``jobs:write``) and forwarded to the
caller's tenant's own Ray cluster with that cluster's token, which never leaves the
control plane. A submission is checked first (``job.policy``), honours
``Idempotency-Key``, counts against ``max_concurrent_jobs`` and becomes a row of
``/api/v1/jobs`` (``kind: "ray"``). Another tenant's submission id is simply unknown to
this tenant's cluster: 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import secrets
import time
from typing import Annotated, Any

import httpx
import websockets
from fastapi import APIRouter, Depends, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from cluster.tenant import ClusterInfo, ClusterStatus
from control_plane.auth.admission import Admission
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import (
    SIGNED_IN,
    Authorize,
    DatabaseDep,
    QuotasDep,
    SessionDep,
    get_services,
    member,
)
from control_plane.errors import (
    AtriumError,
    ClusterUnavailable,
    NotFound,
    PayloadTooLarge,
    PlanLimitExceeded,
    QuotaExceeded,
    RateLimited,
    ValidationFailed,
    responses,
)
from control_plane.idempotency.http import IDEMPOTENCY_ERRORS, IdempotencyKeyHeader, scope_of
from control_plane.idempotency.service import Stored, run_once
from control_plane.job.clusters import RAY_STATUS, TenantClusterService
from control_plane.job.policy import check_submission
from control_plane.job.repository import JobRepository
from control_plane.kit.body_limit import PLAN_LIMITED
from control_plane.kit.ids import new_id
from control_plane.models import Job
from control_plane.plan.catalog import Limit

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/ray/api",
    tags=["ray jobs"],
    responses=responses(*SIGNED_IN, ClusterUnavailable),
)
Reader = Annotated[Principal, Depends(Authorize(Action.JOBS_READ, "tenant_member"))]
Writer = Annotated[Principal, Depends(Authorize(Action.JOBS_WRITE, "tenant_member"))]
# Ray's version of its Jobs API (ray.dashboard.modules.version.CURRENT_VERSION)
JOBS_API_VERSION = "4"
AGENT_WAIT_S = 60.0
JSON_BODY = {"content-type": "application/json"}
# what is not passed on either way: hop-by-hop headers, and the caller's credentials
_DROPPED = {
    "authorization",
    "cookie",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "idempotency-key",
}
_REVERSE_STATUS = {v: k for k, v in RAY_STATUS.items()}


def get_clusters(request: Request) -> TenantClusterService:
    return get_services(request).clusters


ClustersDep = Annotated[TenantClusterService, Depends(get_clusters)]


@router.get("/version", summary="Ray Jobs API version")
async def version(me: Reader) -> dict[str, str]:
    """What `ray job` checks first; answered here, without starting a cluster."""
    return {
        "version": JOBS_API_VERSION,
        "ray_version": importlib.metadata.version("ray"),
        "ray_commit": "",
        "session_name": "atrium",
    }


@router.get("/packages/{protocol}/{name}", summary="Whether a job package was uploaded")
async def package_exists(
    protocol: str, name: str, me: Writer, clusters: ClustersDep, request: Request
) -> Response:
    info = await clusters.ensure(member(me))
    return await forward(clusters, info, request, f"/api/packages/{protocol}/{name}")


@router.put(
    "/packages/{protocol}/{name}",
    summary="Upload a job package (working_dir, py_modules)",
    responses=responses(PayloadTooLarge),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        PLAN_LIMITED: True,  # up to the plan's max_upload_mb, not the API's body limit
    },
)
async def package_upload(
    protocol: str,
    name: str,
    me: Writer,
    clusters: ClustersDep,
    quotas: QuotasDep,
    request: Request,
) -> Response:
    tenant_id = member(me)
    cap_mb = (await quotas.limits(tenant_id)).get(Limit.MAX_UPLOAD_MB)
    body = await _body(request, None if cap_mb is None else int(cap_mb * 1024 * 1024))
    info = await clusters.ensure(tenant_id)
    return await forward(clusters, info, request, f"/api/packages/{protocol}/{name}", body)


@router.post(
    "/jobs/",
    summary="Submit a Ray job to the tenant's own cluster",
    responses=responses(
        *IDEMPOTENCY_ERRORS, PlanLimitExceeded, QuotaExceeded, RateLimited, ValidationFailed
    ),
)
async def submit(
    request: Request,
    me: Writer,
    clusters: ClustersDep,
    quotas: QuotasDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    tenant_id = member(me)
    body = await request.body()
    limits = await quotas.limits(tenant_id)
    await quotas.ensure_left(
        tenant_id, Limit.MONTHLY_CPU_HOURS, refused="new Ray jobs are refused:"
    )
    check_submission(
        body, await clusters.shape(tenant_id), gpus_per_job=limits.get(Limit.MAX_GPUS_PER_JOB)
    )

    async def call() -> Stored:
        await _room_for_a_job(db, tenant_id, limits.get(Limit.MAX_CONCURRENT_JOBS))
        info = await clusters.ensure(tenant_id)
        answer = await _submit(clusters, info, body)
        if answer.status_code == 200:
            await _record(db, tenant_id, me, body, answer.json())
        return Stored(answer.status_code, _passed(answer.headers), answer.content)

    stored, _ = await run_once(
        db, tenant_id=tenant_id, key=idempotency_key, scope=scope_of(request), body=body, call=call
    )
    return Response(stored.body, status_code=stored.status_code, headers=stored.headers)


@router.get("/jobs/", summary="The tenant's Ray jobs")
async def list_jobs(me: Reader, clusters: ClustersDep, request: Request) -> Response:
    info = await clusters.info(member(me))
    if info.status is not ClusterStatus.RUNNING:
        return JSONResponse([])  # a stopped cluster runs nothing; its rows are in /jobs
    return await forward(clusters, info, request, "/api/jobs/")


@router.get("/jobs/{submission_id}", summary="One Ray job", responses=responses(NotFound))
async def job_status(
    submission_id: str, me: Reader, clusters: ClustersDep, session: SessionDep, request: Request
) -> Response:
    tenant_id = member(me)
    info = await clusters.info(tenant_id)
    if info.status is ClusterStatus.RUNNING:
        return await forward(clusters, info, request, f"/api/jobs/{submission_id}")
    job = await JobRepository(session, tenant_id).by_submission(submission_id)
    if job is None:
        raise NotFound(f"no job {submission_id} in this tenant")
    return JSONResponse(_details(job))


@router.get("/jobs/{submission_id}/logs", summary="A Ray job's logs", responses=responses(NotFound))
async def job_logs(
    submission_id: str, me: Reader, clusters: ClustersDep, request: Request
) -> Response:
    info = await _running(clusters, member(me))
    return await forward(clusters, info, request, f"/api/jobs/{submission_id}/logs")


@router.post("/jobs/{submission_id}/stop", summary="Stop a Ray job", responses=responses(NotFound))
async def job_stop(
    submission_id: str, me: Writer, clusters: ClustersDep, request: Request
) -> Response:
    info = await _running(clusters, member(me))
    return await forward(clusters, info, request, f"/api/jobs/{submission_id}/stop")


@router.delete(
    "/jobs/{submission_id}", summary="Delete a finished Ray job", responses=responses(NotFound)
)
async def job_delete(
    submission_id: str, me: Writer, clusters: ClustersDep, request: Request
) -> Response:
    info = await _running(clusters, member(me))
    return await forward(clusters, info, request, f"/api/jobs/{submission_id}")


@router.websocket("/jobs/{submission_id}/logs/tail")
async def job_logs_tail(websocket: WebSocket, submission_id: str) -> None:
    """`ray job logs --follow` / `submit` without `--no-wait`: the log, line by line."""
    services = get_services(websocket)
    try:
        tenant_id = await reader_tenant(websocket, websocket.headers.get("authorization"))
        info = await _running(services.clusters, tenant_id)
    except AtriumError as exc:
        await websocket.close(code=1008, reason=exc.detail[:120])
        return
    await websocket.accept()
    assert info.address is not None and info.token is not None
    url = info.address.replace("http://", "ws://", 1) + f"/api/jobs/{submission_id}/logs/tail"
    options: dict[str, Any] = {
        "additional_headers": {"Authorization": f"Bearer {info.token}"},
        "max_size": None,
        "compression": None,  # Ray's dashboard proxy drops deflated frames
    }
    connecting = (
        websockets.unix_connect(info.socket, url, **options)
        if info.socket
        else websockets.connect(url, **options)
    )
    try:
        async with connecting as upstream:
            async for message in upstream:
                services.clusters.touch(info.tenant_id)
                await websocket.send_text(
                    message if isinstance(message, str) else message.decode(errors="replace")
                )
    except (websockets.WebSocketException, OSError, WebSocketDisconnect) as exc:
        log.warning("log tail of %s ended: %r", submission_id, exc)
    with contextlib.suppress(RuntimeError):
        await websocket.close()


# --- helpers -------------------------------------------------------------------------


async def reader_tenant(connection: HTTPConnection, authorization: str | None) -> str:
    """The tenant of a caller with `jobs:read`, where no `Authorize` dependency can run
    (a WebSocket, a route that also takes a cookie)."""
    services = get_services(connection)
    admitted = await Admission(services.authenticator, services.quotas).admit(
        authorization, Action.JOBS_READ, rate=Limit.API_RPS, tenants_only=True
    )
    return member(admitted.principal)


async def _submit(clusters: TenantClusterService, info: ClusterInfo, body: bytes) -> httpx.Response:
    """POST the job under a submission id fixed here (the caller's, or a new one), so
    that it can be retried safely: a head that has just started may not have its job
    agent yet (Ray answers 500 "No available agent") or may drop the connection; a retry
    of a submission that did land finds it under its id instead of starting a second."""
    request = json.loads(body)
    request.setdefault("submission_id", f"raysubmit_{secrets.token_hex(8)}")
    sid, sent = request["submission_id"], json.dumps(request).encode()
    deadline, tried = time.monotonic() + AGENT_WAIT_S, False
    while True:
        try:
            answer = await clusters.request(
                info,
                "POST",
                "/api/jobs/",
                content=sent,
                headers={"content-type": "application/json"},
            )
        except ClusterUnavailable:
            if time.monotonic() > deadline:
                raise
        else:
            if tried and answer.status_code == 400 and await _exists(clusters, info, sid):
                return httpx.Response(200, json={"job_id": None, "submission_id": sid})
            if answer.status_code != 500 or b"No available agent" not in answer.content:
                return answer
            if time.monotonic() > deadline:
                return answer
        tried = True
        await asyncio.sleep(0.5)


async def _exists(clusters: TenantClusterService, info: ClusterInfo, sid: str) -> bool:
    return (await clusters.request(info, "GET", f"/api/jobs/{sid}")).status_code == 200


async def _running(clusters: TenantClusterService, tenant_id: str) -> ClusterInfo:
    info = await clusters.info(tenant_id)
    if info.status is not ClusterStatus.RUNNING:
        raise NotFound("the tenant's Ray cluster is not running, so no job is either")
    clusters.touch(tenant_id)
    return info


async def forward(
    clusters: TenantClusterService,
    info: ClusterInfo,
    request: Request,
    path: str,
    body: bytes | None = None,
) -> Response:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
    content = body if body is not None else await request.body()
    answer = await clusters.request(
        info,
        request.method,
        path,
        content=content or None,
        headers=headers,
        params=list(request.query_params.multi_items()),
    )
    if answer.status_code == 404:  # Ray's plain-text 404 (another tenant's id, too): a Problem
        raise NotFound(answer.text.strip()[:300] or "not found on the tenant's Ray cluster")
    return Response(answer.content, status_code=answer.status_code, headers=_passed(answer.headers))


def _passed(headers: httpx.Headers) -> dict[str, str]:
    return {
        k: v
        for k, v in headers.items()
        if k.lower() not in _DROPPED and k.lower() not in ("content-encoding", "set-cookie")
    }


async def _body(request: Request, cap: int | None) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if cap is not None and size > cap:
            raise PayloadTooLarge(
                f"the package is larger than this plan's max_upload_mb ({cap // 2**20} MB)",
                extra={"limit": Limit.MAX_UPLOAD_MB.value},
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _room_for_a_job(db: DatabaseDep, tenant_id: str, cap: float | None) -> None:
    if cap is None:
        return
    async with db.sessionmaker() as session:
        active = await JobRepository(session, tenant_id).active()
    if len(active) >= cap:
        raise PlanLimitExceeded(
            f"this plan runs at most {cap:g} jobs at once (max_concurrent_jobs); "
            f"{len(active)} are queued or running",
            extra={"limit": Limit.MAX_CONCURRENT_JOBS.value},
        )


async def _record(
    db: DatabaseDep, tenant_id: str, me: Principal, body: bytes, answer: dict[str, Any]
) -> None:
    request = json.loads(body)
    async with db.sessionmaker() as session:
        session.add(
            Job(
                id=new_id("job"),
                tenant_id=tenant_id,
                kind="ray",
                submission_id=str(answer.get("submission_id") or answer.get("job_id")),
                status="queued",
                entrypoint=str(request.get("entrypoint", ""))[:10_000],
                params={"metadata": request.get("metadata") or {}},
                metrics={},
                created_by=me.user_id,
            )
        )
        await session.commit()


def _details(job: Job) -> dict[str, Any]:
    """A job row in Ray's ``JobDetails`` shape (when its cluster is no longer running)."""

    def ms(when: Any) -> int | None:
        return None if when is None else int(when.timestamp() * 1000)

    return {
        "type": "SUBMISSION",
        "job_id": None,
        "submission_id": job.submission_id,
        "driver_info": None,
        "status": _REVERSE_STATUS.get(job.status, "FAILED"),
        "entrypoint": job.entrypoint,
        "message": job.message,
        "error_type": None,
        "start_time": ms(job.started_at),
        "end_time": ms(job.ended_at),
        "metadata": job.params.get("metadata", {}),
        "runtime_env": {},
        "driver_agent_http_address": None,
        "driver_node_id": None,
        "driver_exit_code": None,
    }
