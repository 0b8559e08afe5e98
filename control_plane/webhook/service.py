"""Tenant webhooks: registered with a public URL, secret shown once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.auth.totp import SecretBox
from control_plane.errors import NotFound, PlanLimitExceeded
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.models import Tenant, Webhook, WebhookDelivery
from control_plane.plan.catalog import Limit
from control_plane.quota.service import Quotas
from control_plane.tenant.repository import TenantRepository
from control_plane.webhook.repository import DeliveryRepository, WebhookRepository
from control_plane.webhook.schemas import WebhookCreate
from control_plane.webhook.signing import new_secret
from control_plane.webhook.ssrf import check_url


async def create(
    session: AsyncSession,
    principal: Principal,
    tenant_id: str,
    data: WebhookCreate,
    *,
    allowed_hosts: list[str],
    quotas: Quotas,
    secrets: SecretBox,
) -> tuple[Webhook, str]:
    await check_url(data.url, allowed_hosts)
    await _within_plan(session, tenant_id, quotas=quotas)
    secret = new_secret()
    hook = WebhookRepository(session, tenant_id).add(
        Webhook(
            id=new_id("whk"),
            tenant_id=tenant_id,
            url=data.url,
            events=data.events,
            secret_sealed=secrets.seal(secret),
        )
    )
    await session.flush()
    record(
        session,
        actor=principal,
        action="webhook.create",
        tenant_id=tenant_id,
        target=("webhook", hook.id),
        details={"url": data.url, "events": data.events},
    )
    return hook, secret


async def _within_plan(session: AsyncSession, tenant_id: str, *, quotas: Quotas) -> None:
    """403 ``plan_limit_reached`` once the tenant has its plan's ``max_webhooks``. The tenant's
    row is written first, so concurrent creates of one tenant take turns (a row lock on
    Postgres, the write lock on SQLite) and each counts what the one before it added."""
    cap = (await quotas.limits(tenant_id)).get(Limit.MAX_WEBHOOKS)
    if cap is None:
        return
    await TenantRepository(session, tenant_id).update_where(
        Tenant.id == tenant_id, updated_at=Tenant.updated_at
    )
    if await WebhookRepository(session, tenant_id).count() >= cap:
        raise PlanLimitExceeded(
            f"the plan allows {cap:g} webhooks (max_webhooks); delete one first",
            extra={"quota": Limit.MAX_WEBHOOKS.value},
        )


async def get(session: AsyncSession, tenant_id: str, webhook_id: str) -> Webhook:
    hook = await WebhookRepository(session, tenant_id).get(webhook_id)
    if hook is None:
        raise NotFound("webhook not found")
    return hook


async def list_page(
    session: AsyncSession, tenant_id: str, params: PageParams
) -> tuple[Sequence[Webhook], str | None]:
    return await WebhookRepository(session, tenant_id).page(params)


async def delete(
    session: AsyncSession, principal: Principal, tenant_id: str, webhook_id: str
) -> None:
    hook = await get(session, tenant_id, webhook_id)
    await WebhookRepository(session, tenant_id).delete(hook)
    record(
        session,
        actor=principal,
        action="webhook.delete",
        tenant_id=tenant_id,
        target=("webhook", hook.id),
    )


async def deliveries(
    session: AsyncSession, tenant_id: str, webhook_id: str, params: PageParams
) -> tuple[Sequence[WebhookDelivery], str | None]:
    hook = await get(session, tenant_id, webhook_id)
    return await DeliveryRepository(session, tenant_id).page_of(hook.id, params)
