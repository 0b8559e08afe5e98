"""A process-wide limit on concurrent sandboxed work (model probes, dataset reads),
granted fairly: tenants take turns, and no tenant holds more than its share."""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    def __init__(self, limit: int, per_tenant: int) -> None:
        self._limit, self._per_tenant = limit, per_tenant
        self._held: Counter[str] = Counter()
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

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
        """Round-robin over tenants with waiters, each up to its share."""
        granted = True
        while granted and self.in_use < self._limit:
            granted = False
            for tenant_id in list(self._waiting):
                queue = self._waiting[tenant_id]
                while queue and queue[0].done():  # cancelled while waiting
                    queue.popleft()
                if not queue:
                    del self._waiting[tenant_id]
                    continue
                if self._held[tenant_id] >= self._per_tenant:
                    continue
                queue.popleft().set_result(None)
                self._held[tenant_id] += 1
                self._waiting.move_to_end(tenant_id)  # the next turn is another tenant's
                granted = True
                break
