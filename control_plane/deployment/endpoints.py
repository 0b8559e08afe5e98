from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deployment import service
from control_plane.deployment.schemas import DeploymentCreate, DeploymentRead, DeploymentUpdate
from control_plane.kit.deps import Authorize, ServicesDep, SessionDep
from control_plane.kit.pagination import Page, PageDep

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
# deployments serve models: the model scopes cover them
Reader = Annotated[Principal, Authorize(Action.MODELS_READ)]
Writer = Annotated[Principal, Authorize(Action.MODELS_WRITE)]


@router.post("", response_model=DeploymentRead, status_code=status.HTTP_202_ACCEPTED)
async def create(
    services: ServicesDep, session: SessionDep, me: Writer, body: DeploymentCreate
) -> DeploymentRead:
    """Deploy a model (shared or dedicated); `status` moves from `pending` to `ready` or
    `failed` as the cluster takes it up."""
    deployment = await service.create(services, session, me, body)
    return await service.read(services, session, deployment)


@router.get("", response_model=Page[DeploymentRead])
async def list_(
    services: ServicesDep, session: SessionDep, me: Reader, page: PageDep
) -> Page[DeploymentRead]:
    """The tenant's deployments."""
    rows, cursor = await service.list_page(session, me, page)
    items = [await service.read(services, session, d) for d in rows]
    return Page(items=items, next_cursor=cursor)


@router.get("/{deployment_id}", response_model=DeploymentRead)
async def get(
    services: ServicesDep, session: SessionDep, me: Reader, deployment_id: str
) -> DeploymentRead:
    """One deployment: what it serves, its status and endpoints."""
    deployment = await service.get(session, me, deployment_id)
    return await service.read(services, session, deployment)


@router.patch(
    "/{deployment_id}", response_model=DeploymentRead, status_code=status.HTTP_202_ACCEPTED
)
async def update(
    services: ServicesDep,
    session: SessionDep,
    me: Writer,
    deployment_id: str,
    body: DeploymentUpdate,
) -> DeploymentRead:
    """Change what a deployment serves (versions, aliases, weights) or how (mode,
    resources, autoscaling, batching); it rolls over without dropping requests."""
    deployment = await service.update(services, session, me, deployment_id, body)
    return await service.read(services, session, deployment)


@router.delete("/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(
    services: ServicesDep, session: SessionDep, me: Writer, deployment_id: str
) -> None:
    """Stop serving; the deployment's replicas and its quota slot are freed."""
    await service.delete(services, session, me, deployment_id)
