"""All SQL on webhooks and their deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import RepositoryBase
from control_plane.models import Webhook, WebhookDelivery


class WebhookRepository(RepositoryBase[Webhook]):
    model = Webhook

    async def enabled_of(self, tenant_ids: set[str]) -> Sequence[Webhook]:
        return await self.all(Webhook.tenant_id.in_(tenant_ids), Webhook.enabled.is_(True))

    async def by_ids(self, ids: set[str]) -> dict[str, Webhook]:
        return {h.id: h for h in await self.all(Webhook.id.in_(ids))}

    async def succeeded(self, hook_id: str) -> None:
        await self.update_where(Webhook.id == hook_id, consecutive_failures=0)

    async def failed(self, hook_id: str) -> None:
        # counted in SQL: deliveries to one webhook may be recorded at the same time
        await self.update_where(
            Webhook.id == hook_id, consecutive_failures=Webhook.consecutive_failures + 1
        )


class DeliveryRepository(RepositoryBase[WebhookDelivery]):
    model = WebhookDelivery

    async def add_new(self, rows: list[dict[str, Any]]) -> None:
        """Insert deliveries, skipping those of a (webhook, event) already there."""
        await self.insert_new(rows, unique=["webhook_id", "event_id"])

    async def due(
        self,
        now: datetime,
        *,
        limit: int,
        skip_webhooks: Sequence[str],
        skip_tenants: Sequence[str],
    ) -> Sequence[WebhookDelivery]:
        """Pending deliveries due by ``now``, oldest first, leaving out the webhooks and
        tenants named."""
        stmt = self.select(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookDelivery.webhook_id.not_in(skip_webhooks),
            WebhookDelivery.tenant_id.not_in(skip_tenants),
        )
        stmt = stmt.order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        return await self._scalars(stmt)

    async def lease(self, delivery: WebhookDelivery, until: datetime) -> bool:
        """Claim a due delivery until ``until``; False if another process took it first."""
        return bool(
            await self.update_where(
                (WebhookDelivery.id == delivery.id)
                & (WebhookDelivery.next_attempt_at == delivery.next_attempt_at),
                next_attempt_at=until,
            )
        )

    async def give_up(self, delivery_id: str) -> None:
        await self.update_where(
            WebhookDelivery.id == delivery_id, status="failed", last_error="webhook disabled"
        )

    async def give_up_pending_of(self, hook_id: str, *, but: str) -> None:
        """Fail what a disabled webhook still had queued, except delivery ``but``."""
        await self.update_where(
            (WebhookDelivery.webhook_id == hook_id)
            & (WebhookDelivery.status == "pending")
            & (WebhookDelivery.id != but),
            status="failed",
            last_error="webhook disabled",
        )

    async def page_of(
        self, hook_id: str, params: PageParams
    ) -> tuple[Sequence[WebhookDelivery], str | None]:
        return await self.page(params, WebhookDelivery.webhook_id == hook_id, newest_first=True)
