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
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.errors import ValidationFailed
from control_plane.event.repository import DeliveryRepository, EventRepository, WebhookRepository
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.models import Event, Webhook, WebhookDelivery
from control_plane.webhook.signing import signed_headers
from control_plane.webhook.ssrf import check_url

log = logging.getLogger(__name__)
STREAM_MAXLEN = 100_000


def event_body(event: Event) -> str:
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "tenant_id": event.tenant_id,
            "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": event.data,
        },
        separators=(",", ":"),
    )


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
        async with self._db.sessionmaker() as session, session.begin():
            events_repo = EventRepository(session, PLATFORM)
            stmt = events_repo.select(Event.fanned_out_at.is_(None)).order_by(Event.id).limit(batch)
            events: Sequence[Event] = (
                await session.scalars(stmt.with_for_update(skip_locked=True))
            ).all()
            if not events:
                return 0
            tenants = {e.tenant_id for e in events if e.tenant_id}
            hooks = await WebhookRepository(session, PLATFORM).all(
                Webhook.tenant_id.in_(tenants), Webhook.enabled.is_(True)
            )
            rows = [_delivery(e, h) for e in events for h in hooks if _wants(h, e)]
            if rows:
                await DeliveryRepository(session, PLATFORM).insert_new(
                    rows, unique=["webhook_id", "event_id"]
                )
            await events_repo.update_where(
                Event.id.in_([e.id for e in events]), fanned_out_at=utcnow()
            )
        return len(events)

    async def stream(self, batch: int = 2000) -> int:
        """Append new events to ``<namespace>:events:<tenant>`` Redis Streams."""
        if self._redis is None:
            return 0
        async with self._db.sessionmaker() as session, session.begin():
            repo = EventRepository(session, PLATFORM)
            stmt = repo.select(Event.streamed_at.is_(None)).order_by(Event.id).limit(batch)
            events: Sequence[Event] = (
                await session.scalars(stmt.with_for_update(skip_locked=True))
            ).all()
            if not events:
                return 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        f"{self._stream_prefix}:{event.tenant_id or '_platform'}",
                        {"id": event.id, "type": event.type, "body": event_body(event)},
                        maxlen=STREAM_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
            await repo.update_where(Event.id.in_([e.id for e in events]), streamed_at=utcnow())
        return len(events)

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
            claimed = []
            for delivery in due:
                won = await deliveries.update_where(
                    (WebhookDelivery.id == delivery.id)
                    & (WebhookDelivery.next_attempt_at == delivery.next_attempt_at),
                    next_attempt_at=lease,
                )
                if not won:
                    continue  # another process took it
                hook = await WebhookRepository(session, PLATFORM).get(delivery.webhook_id)
                event = await EventRepository(session, PLATFORM).get(delivery.event_id)
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
        headers = signed_headers(self._secrets.open(hook.secret_sealed), event.id, utcnow(), body)
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
    return hook.tenant_id == event.tenant_id and ("*" in hook.events or event.type in hook.events)


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
