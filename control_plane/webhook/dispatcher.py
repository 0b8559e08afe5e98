"""Relays the outbox: fans events out to webhooks, delivers them signed with retries,
and (with Redis) appends them to a Redis Stream per tenant.

Several processes may run it at once: on Postgres rows are claimed with
``FOR UPDATE SKIP LOCKED``; deliveries are claimed by a conditional update and
are unique per (webhook, event), so a delivery is never sent twice at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import Text, cast

from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.errors import ValidationFailed
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
from control_plane.webhook.signing import signed_headers
from control_plane.webhook.ssrf import check_url

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
    ) -> None:
        self._db = db
        self._settings = settings
        self._secrets = secrets
        self._redis = redis
        self._stream_prefix = f"{settings.redis_namespace}:events"
        self._xadd_many = redis.register_script(_XADD_MANY) if redis is not None else None
        self._http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False
        )

    async def close(self) -> None:
        await self._http.aclose()

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
        claimed = await self._claim(batch)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(d, h, e) for d, h, e in claimed))
        async with self._db.sessionmaker() as session, session.begin():
            for (delivery, hook, _event), outcome in zip(claimed, outcomes, strict=True):
                await self._record(session, delivery.id, hook.id, outcome)
        return len(claimed)

    async def _claim(self, batch: int) -> list[tuple[WebhookDelivery, Webhook, Event]]:
        now = utcnow()
        lease = now + timedelta(seconds=self._settings.webhook_timeout_seconds * 2 + 5)
        async with self._db.sessionmaker() as session, session.begin():
            deliveries = DeliveryRepository(session, PLATFORM)
            due = await deliveries.all(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                limit=batch,
            )
            won = [
                d
                for d in due
                if await deliveries.update_where(
                    (WebhookDelivery.id == d.id)
                    & (WebhookDelivery.next_attempt_at == d.next_attempt_at),
                    next_attempt_at=lease,
                )
            ]  # the rest were taken by another process meanwhile
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

    async def _send(self, delivery: WebhookDelivery, hook: Webhook, event: Event) -> dict[str, Any]:
        body = event_body(event)
        try:
            secret = self._secrets.open(hook.secret_sealed)
        except ValueError as exc:  # ATRIUM_SECRET_KEY changed: fail loudly, not forever
            return {"ok": False, "code": None, "error": str(exc)}
        headers = signed_headers(secret, event.id, utcnow(), body)
        try:
            await check_url(hook.url, self._settings.webhook_allowed_hosts)  # DNS may have changed
            response = await self._http.post(hook.url, content=body, headers=headers)
        except ValidationFailed as exc:
            return {"ok": False, "code": None, "error": exc.detail}
        except httpx.HTTPError as exc:
            return {"ok": False, "code": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
        ok = 200 <= response.status_code < 300
        return {"ok": ok, "code": response.status_code, "error": None if ok else "non-2xx response"}

    async def _record(
        self, session: Any, delivery_id: str, hook_id: str, outcome: dict[str, Any]
    ) -> None:
        delivery = await DeliveryRepository(session, PLATFORM).get(delivery_id)
        hook = await WebhookRepository(session, PLATFORM).get(hook_id)
        if delivery is None or hook is None:
            return  # the webhook was deleted meanwhile
        now = utcnow()
        delivery.attempts += 1
        delivery.last_status_code = outcome["code"]
        delivery.last_error = outcome["error"]
        if outcome["ok"]:
            delivery.status, delivery.delivered_at = "delivered", now
            hook.consecutive_failures = 0
            return
        hook.consecutive_failures += 1
        if delivery.attempts >= self._settings.webhook_max_attempts:
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = now + timedelta(seconds=self._backoff(delivery.attempts))
        if (
            hook.enabled
            and hook.consecutive_failures >= self._settings.webhook_disable_after_failures
        ):
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
                data={
                    "webhook_id": hook.id,
                    "url": hook.url,
                    "failures": hook.consecutive_failures,
                },
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
