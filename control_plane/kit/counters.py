"""Fixed-window counters, in-process or in Redis (shared by every process).

Login throttling uses them now; tenant rate limits build on the same store.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis.asyncio import Redis


class CounterStore(Protocol):
    async def hit(self, key: str, window_s: int) -> tuple[int, int]:
        """Count one event; return (count in the window, seconds until it resets)."""

    async def peek(self, key: str) -> tuple[int, int]:
        """(count, seconds until reset) without counting."""

    async def clear(self, key: str) -> None: ...

    async def release(self, key: str) -> None:
        """Take back one event counted by ``hit`` (never below zero)."""


class LocalCounters:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, window_s: int) -> tuple[int, int]:
        now = time.monotonic()
        count, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window_s
        self._windows[key] = (count + 1, ends)
        if len(self._windows) > 100_000:
            self._sweep(now)
        return count + 1, math.ceil(ends - now)

    async def peek(self, key: str) -> tuple[int, int]:
        now = time.monotonic()
        count, ends = self._windows.get(key, (0, 0.0))
        return (count, math.ceil(ends - now)) if ends > now else (0, 0)

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    async def release(self, key: str) -> None:
        count, ends = self._windows.get(key, (0, 0.0))
        if count > 1:
            self._windows[key] = (count - 1, ends)
        else:
            self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if v[1] > now}


class RedisCounters:
    def __init__(self, redis: Redis, *, namespace: str = "atrium") -> None:
        self._redis = redis
        self._ns = namespace

    async def hit(self, key: str, window_s: int) -> tuple[int, int]:
        name = f"{self._ns}:ctr:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_s, nx=True)
            pipe.ttl(name)
            count, _, ttl = await pipe.execute()
        return int(count), max(int(ttl), 1)

    async def peek(self, key: str) -> tuple[int, int]:
        name = f"{self._ns}:ctr:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(name)
            pipe.ttl(name)
            count, ttl = await pipe.execute()
        return (int(count), max(int(ttl), 1)) if count is not None else (0, 0)

    async def clear(self, key: str) -> None:
        await self._redis.delete(f"{self._ns}:ctr:{key}")

    async def release(self, key: str) -> None:
        await self._redis.eval(_RELEASE, 1, f"{self._ns}:ctr:{key}")


# decrement an existing counter, dropping it at zero (its window ends with it)
_RELEASE = """
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 0
"""
