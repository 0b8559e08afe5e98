"""Putting a tenant on a plan, and per-tenant limit overrides."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.billing.repository import SubscriptionRepository
from control_plane.errors import ValidationFailed
from control_plane.event.service import emit
from control_plane.event.types import EventType
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.invalidation import Invalidation, identity_changed
from control_plane.models import Subscription, Tenant
from control_plane.plan.catalog import Catalog, Limit
from control_plane.plan.schemas import EffectiveLimits
from control_plane.tenant import service as tenants


async def change_plan(
    session: AsyncSession,
    principal: Principal,
    tenant_id: str,
    plan: str,
    *,
    catalog: Catalog,
    invalidation: Invalidation,
) -> Tenant:
    """Switch plans now: limits follow at once; billing pro-rates from this instant."""
    if catalog.get(plan) is None:
        known = ", ".join(catalog.plans)
        raise ValidationFailed(f"unknown plan '{plan}' (known: {known})", extra={"field": "plan"})
    tenant = await tenants.get(session, principal, tenant_id)
    if tenant.plan == plan:
        return tenant
    now = utcnow()
    subs = SubscriptionRepository(session, tenant.id)
    await subs.update_where(Subscription.ended_at.is_(None), ended_at=now)
    subs.add(Subscription(id=new_id("sub"), tenant_id=tenant.id, plan=plan, started_at=now))
    previous, tenant.plan = tenant.plan, plan
    identity_changed(invalidation, session)
    change = {"from": previous, "to": plan}
    record(
        session,
        actor=principal,
        action="tenant.plan_change",
        tenant_id=tenant.id,
        target=("tenant", tenant.id),
        details=change,
    )
    emit(session, tenant_id=tenant.id, type=EventType.TENANT_PLAN_CHANGED, data=change)
    return tenant


async def set_overrides(
    session: AsyncSession,
    principal: Principal,
    tenant_id: str,
    overrides: dict[Limit, float | None],
    *,
    catalog: Catalog,
    invalidation: Invalidation,
) -> EffectiveLimits:
    tenant = await tenants.get(session, principal, tenant_id)
    tenant.limit_overrides = {k.value: v for k, v in overrides.items()}
    identity_changed(invalidation, session)
    record(
        session,
        actor=principal,
        action="tenant.limits_change",
        tenant_id=tenant.id,
        target=("tenant", tenant.id),
        details=tenant.limit_overrides,
    )
    emit(
        session,
        tenant_id=tenant.id,
        type=EventType.TENANT_LIMITS_CHANGED,
        data=tenant.limit_overrides,
    )
    return effective(catalog, tenant)


def effective(catalog: Catalog, tenant: Tenant) -> EffectiveLimits:
    plan = catalog.get(tenant.plan) or catalog.plans["free"]
    overrides = dict(tenant.limit_overrides or {})
    limits = {limit.value: overrides.get(limit.value, plan.limits.get(limit)) for limit in Limit}
    return EffectiveLimits(plan=plan.name, limits=limits, overrides=overrides)
