from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, CatalogDep, InvalidationDep, SessionDep
from control_plane.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed, responses
from control_plane.kit.pagination import Page, PageDep
from control_plane.tenant import service
from control_plane.tenant.schemas import TenantCreate, TenantRead, TenantUpdate

router = APIRouter(
    prefix="/api/v1/tenants", tags=["tenants"], responses=responses(*SIGNED_IN, ValidationFailed)
)
Admin = Annotated[Principal, Depends(Authorize(Action.TENANTS_ADMIN))]
Member = Annotated[Principal, Depends(Authorize(Action.TENANT_READ))]


@router.post(
    "",
    response_model=TenantRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(Conflict, PayloadTooLarge, ValidationFailed),
)
async def create(
    session: SessionDep, catalog: CatalogDep, me: Admin, body: TenantCreate
) -> TenantRead:
    """Create a tenant (platform admins)."""
    return TenantRead.model_validate(await service.create(session, me, body, catalog=catalog))


@router.get("", response_model=Page[TenantRead])
async def list_(session: SessionDep, me: Member, page: PageDep) -> Page[TenantRead]:
    """All tenants for platform admins; one's own tenant for members."""
    rows, cursor = await service.list_page(session, me, page)
    return Page(items=[TenantRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{tenant_id}", response_model=TenantRead, responses=responses(NotFound))
async def get(session: SessionDep, me: Member, tenant_id: str) -> TenantRead:
    """One tenant (members may read their own)."""
    return TenantRead.model_validate(await service.get(session, me, tenant_id))


@router.patch(
    "/{tenant_id}",
    response_model=TenantRead,
    responses=responses(NotFound, PayloadTooLarge, ValidationFailed),
)
async def update(
    session: SessionDep,
    invalidation: InvalidationDep,
    me: Admin,
    tenant_id: str,
    body: TenantUpdate,
) -> TenantRead:
    """Rename, suspend or reactivate a tenant (platform admins; plans: PUT .../plan)."""
    tenant = await service.update(session, me, tenant_id, body, invalidation=invalidation)
    return TenantRead.model_validate(tenant)


@router.delete(
    "/{tenant_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete(
    session: SessionDep, invalidation: InvalidationDep, me: Admin, tenant_id: str
) -> None:
    """Delete a tenant with its users and keys; its audit trail stays (platform admins)."""
    await service.delete(session, me, tenant_id, invalidation=invalidation)
