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
import json
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Text, cast

from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.event.repository import (
    DeliveryRepository,
    EventRepository,
    OutboxRepository,
    WebhookRepository,
)
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.models import Event, Webhook, WebhookDelivery
from control_plane.webhook.in_flight import InFlight
from control_plane.webhook.signing import signed_headers
from control_plane.webhook.transport import Outcome, WebhookClient

log = logging.getLogger(__name__)
STREAM_MAXLEN = 100_000


_XADD_MANY = """
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 3
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*',
             'id', ARGV[at], 'type', ARGV[at + 1], 'body', ARGV[at + 2])
end
return #KEYS
"""


def _head(event_id: str, type_: str, tenant_id: str | None, created_at: datetime) -> str:
    stamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    head = {"id": event_id, "type": type_, "tenant_id": tenant_id, "timestamp": stamp}
    return json.dumps(head, separators=(",", ":"))[:-1]


def _spliced(
    event_id: str, type_: str, tenant_id: str | None, created_at: datetime, data_json: str
) -> str:
    """The event body with its stored ``data`` JSON inserted verbatim."""
    return f'{_head(event_id, type_, tenant_id, created_at)},"data":{data_json}}}'


def event_body(event: Event) -> str:
    """The JSON every consumer gets: webhook requests and Redis Stream entries alike."""
    data = json.dumps(event.data, separators=(",", ":"))
    return _spliced(event.id, event.type, event.tenant_id, event.created_at, data)


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
        self._redis = redis
        self._stream_prefix = f"{settings.redis_namespace}:events"
        self._xadd_many = redis.register_script(_XADD_MANY) if redis is not None else None
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
            hooks = await WebhookRepository(session, PLATFORM).all(
                Webhook.tenant_id.in_(tenants), Webhook.enabled.is_(True)
            )
            rows = [_delivery(e, h) for e in events for h in hooks if _wants(h, e)]
            if rows:
                await DeliveryRepository(session, PLATFORM).insert_new(
                    rows, unique=["webhook_id", "event_id"]
                )
        return len(ids)

    async def stream(self, batch: int = 2000) -> int:
        """Append new events to ``<namespace>:events:<tenant>`` Redis Streams.

        One Lua call appends the whole batch (far cheaper than a command per event), and
        the event's JSON is spliced in as stored, not decoded and encoded again. If the
        commit fails after the append, the batch is appended again: at least once."""
        async with self._db.sessionmaker() as session, session.begin():
            outbox = OutboxRepository(session)
            if self._xadd_many is None:
                await outbox.drop("stream")  # no Redis: nothing to stream to
                return 0
            ids = await outbox.claim("stream", batch)
            if not ids:
                return 0
            stmt = (
                EventRepository(session, PLATFORM)
                .select(Event.id.in_(ids))
                .with_only_columns(
                    Event.id, Event.tenant_id, Event.type, cast(Event.data, Text), Event.created_at
                )
                .order_by(Event.id)
            )
            rows = (await session.execute(stmt)).all()
            keys = [f"{self._stream_prefix}:{row[1] or '_platform'}" for row in rows]
            args: list[str | int] = [STREAM_MAXLEN]
            for event_id, tenant_id, type_, data_json, created_at in rows:
                args += [
                    event_id,
                    type_,
                    _spliced(event_id, type_, tenant_id, created_at, data_json),
                ]
            await self._xadd_many(keys=keys, args=args)
        return len(ids)

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
                    if not await deliveries.update_where(
                        (WebhookDelivery.id == d.id)
                        & (WebhookDelivery.next_attempt_at == d.next_attempt_at),
                        next_attempt_at=lease,
                    ):  # taken by another process meanwhile
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
        stmt = deliveries.select(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookDelivery.webhook_id.not_in(self._in_flight.full_webhooks()),
            WebhookDelivery.tenant_id.not_in(self._in_flight.full_tenants()),
        )
        stmt = stmt.order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        return (await deliveries.session.scalars(stmt)).all()

    async def _with_hooks_and_events(
        self, session: Any, won: list[WebhookDelivery]
    ) -> list[tuple[WebhookDelivery, Webhook, Event]]:
        deliveries = DeliveryRepository(session, PLATFORM)
        hooks = {
            h.id: h
            for h in await WebhookRepository(session, PLATFORM).all(
                Webhook.id.in_({d.webhook_id for d in won})
            )
        }
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
                await deliveries.update_where(
                    WebhookDelivery.id == delivery.id,
                    status="failed",
                    last_error="webhook disabled",
                )
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

    async def _record(self, session: Any, delivery_id: str, hook_id: str, outcome: Outcome) -> None:
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
            await hooks.update_where(Webhook.id == hook_id, consecutive_failures=0)
            return
        if delivery.attempts >= self._settings.webhook_max_attempts:
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = now + timedelta(seconds=self._backoff(delivery.attempts))
        # counted in SQL: deliveries to one webhook may be recorded at the same time
        await hooks.update_where(
            Webhook.id == hook_id, consecutive_failures=Webhook.consecutive_failures + 1
        )
        hook = await hooks.get(hook_id)
        if (
            hook is not None
            and hook.enabled
            and hook.consecutive_failures >= self._settings.webhook_disable_after_failures
        ):
            await self._disable(session, hook, delivery, now)

    async def _disable(
        self, session: Any, hook: Webhook, delivery: WebhookDelivery, now: datetime
    ) -> None:
        hook.enabled, hook.disabled_at = False, now
        # what it still had queued will not be sent: say so now, not when it falls due
        await DeliveryRepository(session, PLATFORM).update_where(
            (WebhookDelivery.webhook_id == hook.id)
            & (WebhookDelivery.status == "pending")
            & (WebhookDelivery.id != delivery.id),
            status="failed",
            last_error="webhook disabled",
        )
        if delivery.status == "pending":
            delivery.status = "failed"
        emit(
            session,
            tenant_id=hook.tenant_id,
            type="webhook.disabled",
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
