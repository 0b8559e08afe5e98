from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deployment import service
from control_plane.deployment.schemas import DeploymentCreate, DeploymentRead, DeploymentUpdate
from control_plane.deps import (
    SIGNED_IN,
    Authorize,
    ClusterDep,
    DatabaseDep,
    QuotasDep,
    ReconcilerDep,
    SessionDep,
    SettingsDep,
    member,
)
from control_plane.errors import (
    ClusterUnavailable,
    Conflict,
    Forbidden,
    NotFound,
    PlanLimitExceeded,
    QuotaExceeded,
    RateLimited,
    ValidationFailed,
    responses,
)
from control_plane.idempotency.http import (
    IDEMPOTENCY_ERRORS,
    IdempotencyKeyHeader,
    respond,
    scope_of,
    stored_json,
)
from control_plane.idempotency.service import Stored, run_once
from control_plane.kit.pagination import Page, PageDep

router = APIRouter(
    prefix="/api/v1/deployments",
    tags=["deployments"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
# deployments serve models: the model scopes cover them; they belong to tenants
Reader = Annotated[Principal, Depends(Authorize(Action.MODELS_READ, "tenant_member"))]
Writer = Annotated[Principal, Depends(Authorize(Action.MODELS_WRITE, "tenant_member"))]
# what a change can meet besides the router's: the plan's caps, the month's hours used
# up, an unknown or unready target, a taken name, no cluster to run it
CHANGE_ERRORS = (
    Forbidden,
    PlanLimitExceeded,
    NotFound,
    Conflict,
    RateLimited,
    QuotaExceeded,
    ClusterUnavailable,
)
CHANGE_PROBLEMS = responses(*CHANGE_ERRORS)


@router.post(
    "",
    response_model=DeploymentRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(*CHANGE_ERRORS, *IDEMPOTENCY_ERRORS),
)
async def create(
    request: Request,
    response: Response,
    session: SessionDep,
    me: Writer,
    body: DeploymentCreate,
    settings: SettingsDep,
    cluster: ClusterDep,
    quotas: QuotasDep,
    db: DatabaseDep,
    reconciler: ReconcilerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Deploy a model (shared or dedicated); `status` moves from `pending` to `ready` or
    `failed` as the cluster takes it up. A retry with the same `Idempotency-Key` gets
    the first answer again instead of a second deployment."""

    async def deploy() -> Stored:
        deployment = await service.create(
            session,
            member(me),
            data=body,
            actor=me,
            cluster=cluster,
            quotas=quotas,
            db=db,
            reconciler=reconciler,
        )
        read = await service.read(session, deployment, serve_url=settings.serve_url)
        await session.commit()  # the key keeps this answer only once the deployment is stored
        return stored_json(status.HTTP_202_ACCEPTED, read)

    stored, _ = await run_once(
        db,
        tenant_id=member(me),
        key=idempotency_key,
        scope=scope_of(request),
        body=await request.body(),
        call=deploy,
    )
    return respond(stored, sub=response)


@router.get("", response_model=Page[DeploymentRead])
async def list_(
    session: SessionDep, me: Reader, page: PageDep, settings: SettingsDep
) -> Page[DeploymentRead]:
    """The tenant's deployments."""
    rows, cursor = await service.list_page(session, member(me), page)
    items = [await service.read(session, d, serve_url=settings.serve_url) for d in rows]
    return Page(items=items, next_cursor=cursor)


@router.get("/{deployment_id}", response_model=DeploymentRead, responses=responses(NotFound))
async def get(
    session: SessionDep, me: Reader, deployment_id: str, settings: SettingsDep
) -> DeploymentRead:
    """One deployment: what it serves, its status and endpoints."""
    deployment = await service.get(session, member(me), deployment_id)
    return await service.read(session, deployment, serve_url=settings.serve_url)


@router.patch(
    "/{deployment_id}",
    response_model=DeploymentRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=CHANGE_PROBLEMS,
)
async def update(
    session: SessionDep,
    me: Writer,
    deployment_id: str,
    body: DeploymentUpdate,
    settings: SettingsDep,
    cluster: ClusterDep,
    quotas: QuotasDep,
    db: DatabaseDep,
    reconciler: ReconcilerDep,
) -> DeploymentRead:
    """Change what a deployment serves (versions, aliases, weights) or how (mode,
    resources, autoscaling, batching); it rolls over without dropping requests."""
    deployment = await service.update(
        session,
        member(me),
        deployment_id,
        body,
        actor=me,
        cluster=cluster,
        quotas=quotas,
        db=db,
        reconciler=reconciler,
    )
    return await service.read(session, deployment, serve_url=settings.serve_url)


@router.delete(
    "/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete(
    session: SessionDep, me: Writer, deployment_id: str, reconciler: ReconcilerDep
) -> None:
    """Stop serving; the deployment's replicas and its quota slot are freed."""
    await service.delete(session, member(me), deployment_id, actor=me, reconciler=reconciler)
