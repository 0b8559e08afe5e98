"""Relays the outbox: fans events out to webhooks, delivers them signed with retries,
and (with Redis) appends them to a Redis Stream per tenant.

Several processes may run it at once: on Postgres rows are claimed with
``FOR UPDATE SKIP LOCKED``; deliveries are claimed by a conditional update and
are unique per (webhook, event), so a delivery is never sent twice at once.

Each delivery is sent by a task of its own and recorded when it is done, so a slow
receiver holds only its own slots: at most ``webhook_concurrency_per_webhook``
deliveries to one webhook and ``webhook_concurrency_per_tenant`` of one tenant are in
flight at once (per process), out of ``webhook_concurrency``; due deliveries of busy
webhooks and tenants are left for later rather than claimed to wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.event.body import event_body
from control_plane.event.repository import EventRepository, OutboxRepository
from control_plane.event.service import emit
from control_plane.event.stream import EventStream
from control_plane.event.types import EventType
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.models import Event, Webhook, WebhookDelivery
from control_plane.webhook.in_flight import InFlight
from control_plane.webhook.repository import DeliveryRepository, WebhookRepository
from control_plane.webhook.signing import signed_headers
from control_plane.webhook.transport import Outcome, WebhookClient

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        secrets: SecretBox,
        redis: Redis | None,
        client: WebhookClient | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._secrets = secrets
        self._stream = EventStream(redis, namespace=settings.redis_namespace)
        self._client = client or WebhookClient(
            allowed_hosts=settings.webhook_allowed_hosts,
            timeout_s=settings.webhook_timeout_seconds,
            max_connections=settings.webhook_concurrency,
        )
        self._in_flight = InFlight(
            total=settings.webhook_concurrency,
            per_tenant=settings.webhook_concurrency_per_tenant,
            per_webhook=settings.webhook_concurrency_per_webhook,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop the deliveries in flight (their leases run out and they are sent again)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def run_forever(self) -> None:
        while True:
            try:
                busy = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event dispatcher step failed")
                busy = 0
            if not busy:
                await asyncio.sleep(self._settings.dispatcher_poll_seconds)

    async def step(self) -> int:
        """One round of every duty; how much work it did (0: idle)."""
        return await self.fan_out() + await self.stream() + await self.deliver_due()

    async def fan_out(self, batch: int = 500) -> int:
        """Turn new events into pending deliveries for the webhooks that want them."""
        async with self._db.sessionmaker() as session, session.begin():
            ids = await OutboxRepository(session).claim("fanout", batch)
            if not ids:
                return 0
            events = await EventRepository(session, PLATFORM).all(Event.id.in_(ids))
            tenants = {e.tenant_id for e in events if e.tenant_id}
            hooks = await WebhookRepository(session, PLATFORM).enabled_of(tenants)
            rows = [_delivery(e, h) for e in events for h in hooks if _wants(h, e)]
            if rows:
                await DeliveryRepository(session, PLATFORM).add_new(rows)
        return len(ids)

    async def stream(self, batch: int = 2000) -> int:
        """Append new events to their tenant's Redis Stream (``event.stream``)."""
        async with self._db.sessionmaker() as session, session.begin():
            return await self._stream.relay(session, batch)

    async def deliver_due(self, batch: int = 50) -> int:
        """Start sending the due deliveries there are free slots for; how many started.
        Each is sent and recorded by a task of its own."""
        room = min(batch, self._in_flight.free)
        if room <= 0:
            return 0
        claimed = await self._claim(room)
        for delivery, hook, event in claimed:
            task = asyncio.create_task(self._deliver(delivery, hook, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def _deliver(self, delivery: WebhookDelivery, hook: Webhook, event: Event) -> None:
        try:
            outcome = await self._send(hook, event)
            async with self._db.sessionmaker() as session, session.begin():
                await self._record(session, delivery.id, hook.id, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease runs out and the delivery is tried again
            log.exception("webhook delivery %s failed to be recorded", delivery.id)
        finally:
            self._in_flight.done(delivery)

    async def _claim(self, room: int) -> list[tuple[WebhookDelivery, Webhook, Event]]:
        now = utcnow()
        lease = now + timedelta(seconds=self._settings.webhook_timeout_seconds * 2 + 5)
        won: list[WebhookDelivery] = []
        try:
            async with self._db.sessionmaker() as session, session.begin():
                deliveries = DeliveryRepository(session, PLATFORM)
                for d in await self._due(deliveries, now, limit=room * 4):
                    if len(won) == room or not self._in_flight.take(d):
                        continue
                    won.append(d)
                    if not await deliveries.lease(d, lease):  # taken by another process
                        self._in_flight.done(won.pop())
                claimed = await self._with_hooks_and_events(session, won)
        except BaseException:
            for d in won:
                self._in_flight.done(d)
            raise
        sending = {d.id for d, _, _ in claimed}
        for d in won:
            if d.id not in sending:  # failed at once: its webhook is gone or disabled
                self._in_flight.done(d)
        return claimed

    async def _due(
        self, deliveries: DeliveryRepository, now: datetime, *, limit: int
    ) -> Sequence[WebhookDelivery]:
        """Due deliveries, oldest first, leaving out webhooks and tenants at their cap
        (so a backlog of one receiver does not fill the batch)."""
        return await deliveries.due(
            now,
            limit=limit,
            skip_webhooks=self._in_flight.full_webhooks(),
            skip_tenants=self._in_flight.full_tenants(),
        )

    async def _with_hooks_and_events(
        self, session: AsyncSession, won: list[WebhookDelivery]
    ) -> list[tuple[WebhookDelivery, Webhook, Event]]:
        deliveries = DeliveryRepository(session, PLATFORM)
        hooks = await WebhookRepository(session, PLATFORM).by_ids({d.webhook_id for d in won})
        events = {
            e.id: e
            for e in await EventRepository(session, PLATFORM).all(
                Event.id.in_({d.event_id for d in won})
            )
        }
        claimed = []
        for delivery in won:
            hook, event = hooks.get(delivery.webhook_id), events.get(delivery.event_id)
            if hook is None or not hook.enabled or event is None:
                await deliveries.give_up(delivery.id)
                continue
            claimed.append((delivery, hook, event))
        return claimed

    async def _send(self, hook: Webhook, event: Event) -> Outcome:
        body = event_body(event)
        try:
            secret = self._secrets.open(hook.secret_sealed)
        except ValueError as exc:  # ATRIUM_SECRET_KEY changed: fail loudly, not forever
            return Outcome(False, None, str(exc))
        headers = signed_headers(secret, event.id, utcnow(), body)
        return await self._client.post(hook.url, body, headers)

    async def _record(
        self, session: AsyncSession, delivery_id: str, hook_id: str, outcome: Outcome
    ) -> None:
        delivery = await DeliveryRepository(session, PLATFORM).get(delivery_id)
        hooks = WebhookRepository(session, PLATFORM)
        if delivery is None:
            return  # the webhook was deleted meanwhile
        now = utcnow()
        delivery.attempts += 1
        delivery.last_status_code = outcome.code
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.status, delivery.delivered_at = "delivered", now
            await hooks.succeeded(hook_id)
            return
        if delivery.attempts >= self._settings.webhook_max_attempts:
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = now + timedelta(seconds=self._backoff(delivery.attempts))
        await hooks.failed(hook_id)
        hook = await hooks.get(hook_id)
        if (
            hook is not None
            and hook.enabled
            and hook.consecutive_failures >= self._settings.webhook_disable_after_failures
        ):
            await self._disable(session, hook, delivery, now)

    async def _disable(
        self, session: AsyncSession, hook: Webhook, delivery: WebhookDelivery, now: datetime
    ) -> None:
        hook.enabled, hook.disabled_at = False, now
        # what it still had queued will not be sent: say so now, not when it falls due
        await DeliveryRepository(session, PLATFORM).give_up_pending_of(hook.id, but=delivery.id)
        if delivery.status == "pending":
            delivery.status = "failed"
        emit(
            session,
            tenant_id=hook.tenant_id,
            type=EventType.WEBHOOK_DISABLED,
            data={"webhook_id": hook.id, "url": hook.url, "failures": hook.consecutive_failures},
        )

    def _backoff(self, attempts: int) -> float:
        delay = min(self._settings.webhook_retry_base_seconds * 2 ** (attempts - 1), 3600.0)
        jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        return float(delay * jitter)


def _wants(hook: Webhook, event: Event) -> bool:
    """Events of the hook's tenant and types, that happened after it was registered (a
    relay running behind must not hand a new webhook what came before it)."""
    return (
        hook.tenant_id == event.tenant_id
        and ("*" in hook.events or event.type in hook.events)
        and event.created_at >= hook.created_at
    )


def _delivery(event: Event, hook: Webhook) -> dict[str, Any]:
    now: datetime = utcnow()
    return {
        "id": new_id("dlv"),
        "tenant_id": hook.tenant_id,
        "webhook_id": hook.id,
        "event_id": event.id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
