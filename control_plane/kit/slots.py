"""A process-wide limit on concurrent sandboxed work (model probes, dataset reads),
granted fairly: tenants take turns, and no tenant holds more than its share."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    def __init__(self, limit: int, per_tenant: int) -> None:
        self._limit, self._per_tenant = limit, per_tenant
        self._held: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        # when each tenant last got a slot: a tenant that just had a turn goes behind
        # every other waiting tenant, even one that asked after it
        self._last_turn: dict[str, int] = {}
        self._turns = itertools.count()

    @property
    def in_use(self) -> int:
        return sum(self._held.values())

    @asynccontextmanager
    async def slot(self, tenant_id: str) -> AsyncIterator[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant_id, deque()).append(future)
        self._grant()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled
                self._release(tenant_id)
            raise
        try:
            yield
        finally:
            self._release(tenant_id)

    def _release(self, tenant_id: str) -> None:
        self._held[tenant_id] -= 1
        if self._held[tenant_id] <= 0:
            del self._held[tenant_id]
        self._grant()

    def _grant(self) -> None:
        """Free slots go to the waiting tenant whose last turn is oldest (one that never
        had a turn first), each up to its share."""
        while self.in_use < self._limit:
            tenant_id = self._next()
            if tenant_id is None:
                return
            self._waiting[tenant_id].popleft().set_result(None)
            self._held[tenant_id] += 1
            self._last_turn[tenant_id] = next(self._turns)

    def _next(self) -> str | None:
        eligible = []
        for tenant_id in list(self._waiting):
            queue = self._waiting[tenant_id]
            while queue and queue[0].done():  # cancelled while waiting
                queue.popleft()
            if not queue:
                del self._waiting[tenant_id]
            elif self._held[tenant_id] < self._per_tenant:
                eligible.append(tenant_id)
        return min(eligible, key=lambda t: self._last_turn.get(t, -1), default=None)
