"""Tenants: created and governed by platform admins, read by their members."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.billing.repository import SubscriptionRepository
from control_plane.errors import Conflict, Forbidden, NotFound, ValidationFailed
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.invalidation import Invalidation, identity_changed
from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import PLATFORM, Scope
from control_plane.models import Subscription, Tenant
from control_plane.plan.catalog import Catalog
from control_plane.tenant.repository import TenantRepository
from control_plane.tenant.schemas import TenantCreate, TenantUpdate


def own_tenant(principal: Principal, what: str) -> str:
    """The caller's tenant, for things only tenants have (platform admins get 403).
    Routes for tenant members only say so instead: ``Authorize(..., "tenant_member")``."""
    if principal.tenant_id is None:
        raise Forbidden(f"{what} belong to tenants")
    return principal.tenant_id


def scope_of(principal: Principal) -> Scope:
    """What the caller may see: everything for platform admins, else its own tenant."""
    if principal.is_platform_admin:
        return PLATFORM
    assert principal.tenant_id is not None
    return principal.tenant_id


_PAST = {"suspend": "tenant.suspended", "activate": "tenant.activated", "update": "tenant.updated"}


async def create(
    session: AsyncSession, principal: Principal, data: TenantCreate, *, catalog: Catalog
) -> Tenant:
    if catalog.get(data.plan) is None:
        known = ", ".join(catalog.plans)
        raise ValidationFailed(
            f"unknown plan '{data.plan}' (known: {known})", extra={"field": "plan"}
        )
    repo = TenantRepository(session, PLATFORM)
    if await repo.first(Tenant.slug == data.slug):
        raise Conflict(f"a tenant with slug '{data.slug}' exists", extra={"field": "slug"})
    tenant = repo.add(Tenant(id=new_id("ten"), name=data.name, slug=data.slug, plan=data.plan))
    await session.flush()
    SubscriptionRepository(session, tenant.id).add(
        Subscription(id=new_id("sub"), tenant_id=tenant.id, plan=tenant.plan, started_at=utcnow())
    )
    emit(
        session,
        tenant_id=tenant.id,
        type="tenant.created",
        data={
            "tenant_id": tenant.id,
            "name": tenant.name,
            "slug": tenant.slug,
            "plan": tenant.plan,
        },
    )
    record(
        session,
        actor=principal,
        action="tenant.create",
        tenant_id=tenant.id,
        target=("tenant", tenant.id),
        details=data.model_dump(),
    )
    return tenant


async def get(session: AsyncSession, principal: Principal, tenant_id: str) -> Tenant:
    tenant = await TenantRepository(session, scope_of(principal)).get(tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def list_page(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[Sequence[Tenant], str | None]:
    return await TenantRepository(session, scope_of(principal)).page(params)


async def update(
    session: AsyncSession,
    principal: Principal,
    tenant_id: str,
    data: TenantUpdate,
    *,
    invalidation: Invalidation,
) -> Tenant:
    tenant = await get(session, principal, tenant_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for field, value in changes.items():
        setattr(tenant, field, value)
    identity_changed(invalidation, session)
    verb = {"suspended": "suspend", "active": "activate"}.get(changes.get("status", ""), "update")
    emit(session, tenant_id=tenant.id, type=_PAST[verb], data=changes)
    record(
        session,
        actor=principal,
        action=f"tenant.{verb}",
        tenant_id=tenant.id,
        target=("tenant", tenant.id),
        details=changes,
    )
    return tenant


async def delete(
    session: AsyncSession, principal: Principal, tenant_id: str, *, invalidation: Invalidation
) -> None:
    tenant = await get(session, principal, tenant_id)
    await TenantRepository(session, PLATFORM).delete(tenant)
    identity_changed(invalidation, session)
    record(
        session,
        actor=principal,
        action="tenant.delete",
        tenant_id=tenant.id,
        target=("tenant", tenant.id),
        details={"slug": tenant.slug},
    )
