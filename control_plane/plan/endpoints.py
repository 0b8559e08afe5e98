from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.kit.deps import Authorize, ServicesDep, SessionDep
from control_plane.plan import service
from control_plane.plan.schemas import EffectiveLimits, LimitOverrides, PlanChange, PlanList
from control_plane.tenant import service as tenants
from control_plane.tenant.schemas import TenantRead

router = APIRouter(prefix="/api/v1", tags=["plans"])
Admin = Annotated[Principal, Authorize(Action.TENANTS_ADMIN)]


@router.get("/plans", response_model=PlanList)
async def list_plans(
    services: ServicesDep, me: Annotated[Principal, Authorize(Action.PLANS_READ)]
) -> PlanList:
    """The plans on offer: prices, included amounts, overage prices and limits."""
    return PlanList(currency=services.catalog.currency, items=list(services.catalog.plans.values()))


@router.put("/tenants/{tenant_id}/plan", response_model=TenantRead)
async def change_plan(
    services: ServicesDep, session: SessionDep, me: Admin, tenant_id: str, body: PlanChange
) -> TenantRead:
    """Put a tenant on a plan now (platform admins); billing pro-rates the change."""
    tenant = await service.change_plan(services, session, me, tenant_id, body.plan)
    return TenantRead.model_validate(tenant)


@router.get("/tenants/{tenant_id}/limits", response_model=EffectiveLimits)
async def get_limits(
    services: ServicesDep,
    session: SessionDep,
    me: Annotated[Principal, Authorize(Action.TENANT_READ)],
    tenant_id: str,
) -> EffectiveLimits:
    """The limits in force for a tenant: its plan's, with its overrides applied."""
    return service.effective(services, await tenants.get(session, me, tenant_id))


@router.put("/tenants/{tenant_id}/limits", response_model=EffectiveLimits)
async def set_limits(
    services: ServicesDep, session: SessionDep, me: Admin, tenant_id: str, body: LimitOverrides
) -> EffectiveLimits:
    """Override any limit of a tenant's plan (platform admins)."""
    return await service.set_overrides(services, session, me, tenant_id, body.limits)
