"""Tells every process that cached identity facts are stale.

In-process listeners are called at once; with Redis, other processes (more API
workers, the inference gateway) hear it over pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.kit.hooks import after_commit

log = logging.getLogger(__name__)


class Invalidation:
    def __init__(self, redis: Redis | None = None, *, channel: str = "atrium:invalidate") -> None:
        self._redis = redis
        self._channel = channel
        self._listeners: list[Callable[[str], None]] = []
        self._origin = uuid.uuid4().hex

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    async def publish(self, topic: str) -> None:
        self._notify(topic)
        if self._redis is not None:
            await self._redis.publish(self._channel, f"{self._origin}:{topic}")

    def _notify(self, topic: str) -> None:
        for listener in self._listeners:
            listener(topic)

    async def listen(self) -> None:
        """Relay other processes' messages until cancelled (no-op without Redis)."""
        if self._redis is None:
            return
        while True:
            try:
                await self._listen_once(self._redis)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("invalidation listener lost Redis; resubscribing")
                self._notify("*")  # anything may have changed while we were deaf
                await asyncio.sleep(1)

    async def _listen_once(self, redis: Redis) -> None:
        pubsub = redis.pubsub()
        await pubsub.subscribe(self._channel)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                origin, _, topic = message["data"].decode().partition(":")
                if origin != self._origin:
                    self._notify(topic)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def identity_changed(invalidation: Invalidation, session: AsyncSession) -> None:
    """Cached users, keys, sessions and tenants are stale once this transaction commits:
    every process (and the gateway) drops them."""
    after_commit(session, lambda: invalidation.publish("identity"))
