from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, CatalogDep, InvalidationDep, SessionDep
from control_plane.errors import (
    NotFound,
    ValidationFailed,
    responses,
)
from control_plane.plan import service
from control_plane.plan.schemas import EffectiveLimits, LimitOverrides, PlanChange, PlanList
from control_plane.tenant import service as tenants
from control_plane.tenant.schemas import TenantRead

router = APIRouter(
    prefix="/api/v1",
    tags=["plans"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
Admin = Annotated[Principal, Depends(Authorize(Action.TENANTS_ADMIN))]


@router.get("/plans", response_model=PlanList)
async def list_plans(
    catalog: CatalogDep, me: Annotated[Principal, Depends(Authorize(Action.PLANS_READ))]
) -> PlanList:
    """The plans on offer: prices, included amounts, overage prices and limits."""
    return PlanList(currency=catalog.currency, items=list(catalog.plans.values()))


@router.put("/tenants/{tenant_id}/plan", response_model=TenantRead, responses=responses(NotFound))
async def change_plan(
    catalog: CatalogDep,
    invalidation: InvalidationDep,
    session: SessionDep,
    me: Admin,
    tenant_id: str,
    body: PlanChange,
) -> TenantRead:
    """Put a tenant on a plan now (platform admins); billing pro-rates the change."""
    tenant = await service.change_plan(
        session, me, tenant_id, body.plan, catalog=catalog, invalidation=invalidation
    )
    return TenantRead.model_validate(tenant)


@router.get(
    "/tenants/{tenant_id}/limits", response_model=EffectiveLimits, responses=responses(NotFound)
)
async def get_limits(
    catalog: CatalogDep,
    session: SessionDep,
    me: Annotated[Principal, Depends(Authorize(Action.TENANT_READ))],
    tenant_id: str,
) -> EffectiveLimits:
    """The limits in force for a tenant: its plan's, with its overrides applied."""
    return service.effective(catalog, await tenants.get(session, me, tenant_id))


@router.put(
    "/tenants/{tenant_id}/limits", response_model=EffectiveLimits, responses=responses(NotFound)
)
async def set_limits(
    catalog: CatalogDep,
    invalidation: InvalidationDep,
    session: SessionDep,
    me: Admin,
    tenant_id: str,
    body: LimitOverrides,
) -> EffectiveLimits:
    """Override any limit of a tenant's plan (platform admins)."""
    return await service.set_overrides(
        session, me, tenant_id, body.limits, catalog=catalog, invalidation=invalidation
    )
