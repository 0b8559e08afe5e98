"""Atomic quota primitives, in-process or in Redis (Lua), with one contract.

- ``charge``: add to a counter only if it stays within the limit, once per dedupe key.
- ``acquire``/``release``: concurrency slots held as leases that expire if not renewed,
  so a crashed holder never keeps its slot.
- ``take``: a token bucket (rate limit).

A counter that does not exist yet answers ``NEEDS_SEED``: the caller seeds it from
the usage ledger (``seed``), so a restart or a flushed Redis never forgets usage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: str  # "charged" | "duplicate" | "exceeded" | "needs_seed"
    used: int


@dataclass(frozen=True, slots=True)
class TakeResult:
    allowed: bool
    remaining: float
    retry_after: float


class QuotaBackend(Protocol):
    async def charge(
        self, key: str, amount: int, limit: int | None, *, dedupe: str | None, ttl_s: int
    ) -> ChargeResult:
        """``ttl_s``: how long ``dedupe`` is remembered."""

    async def seed(self, key: str, value: int, *, ttl_s: int) -> None: ...

    async def used(self, key: str) -> int | None: ...

    async def acquire(self, key: str, holder: str, limit: int, *, lease_s: float) -> bool: ...

    async def release(self, key: str, holder: str) -> None: ...

    async def holders(self, key: str) -> int: ...

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TakeResult: ...


class LocalQuotaBackend:
    """One process: the event loop runs each method without interleaving, so it is atomic."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._dedupe: dict[str, float] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    async def charge(
        self, key: str, amount: int, limit: int | None, *, dedupe: str | None, ttl_s: int
    ) -> ChargeResult:
        if key not in self._counters:
            return ChargeResult("needs_seed", 0)
        used = self._counters[key]
        now = time.monotonic()
        if dedupe is not None and self._dedupe.get(dedupe, 0.0) > now:
            return ChargeResult("duplicate", used)
        if limit is not None and used + amount > limit:
            return ChargeResult("exceeded", used)
        self._counters[key] = used + amount
        if dedupe is not None:
            self._dedupe[dedupe] = now + ttl_s
            if len(self._dedupe) > 100_000:
                self._dedupe = {k: t for k, t in self._dedupe.items() if t > now}
        return ChargeResult("charged", used + amount)

    async def seed(self, key: str, value: int, *, ttl_s: int) -> None:
        self._counters.setdefault(key, value)

    async def used(self, key: str) -> int | None:
        return self._counters.get(key)

    async def acquire(self, key: str, holder: str, limit: int, *, lease_s: float) -> bool:
        now = time.monotonic()
        leases = {h: t for h, t in self._leases.get(key, {}).items() if t > now}
        if holder not in leases and len(leases) >= limit:
            self._leases[key] = leases
            return False
        leases[holder] = now + lease_s
        self._leases[key] = leases
        return True

    async def release(self, key: str, holder: str) -> None:
        self._leases.get(key, {}).pop(holder, None)

    async def holders(self, key: str) -> int:
        now = time.monotonic()
        return sum(1 for t in self._leases.get(key, {}).values() if t > now)

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TakeResult:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - stamp) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return TakeResult(True, tokens - cost, 0.0)
        self._buckets[key] = (tokens, now)
        return TakeResult(False, tokens, (cost - tokens) / rate)


_CHARGE = """
local used = redis.call('GET', KEYS[1])
if not used then return {'needs_seed', 0} end
used = tonumber(used)
local amount = tonumber(ARGV[1])
if KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return {'duplicate', used} end
if ARGV[2] ~= '' and used + amount > tonumber(ARGV[2]) then return {'exceeded', used} end
used = redis.call('INCRBY', KEYS[1], amount)
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], 1, 'EX', ARGV[3]) end
return {'charged', used}
"""

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not held) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local lease = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
"""

_HOLDERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now + 1, '+inf')
"""

_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(retry)}
"""


class RedisQuotaBackend:
    """Correct across processes: each operation is one Lua script, atomic in Redis,
    and time comes from the Redis server, so process clocks do not matter."""

    def __init__(self, redis: Redis, *, namespace: str) -> None:
        self._redis = redis
        self._ns = namespace
        self._charge = redis.register_script(_CHARGE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._holders = redis.register_script(_HOLDERS)
        self._take = redis.register_script(_TAKE)

    def _key(self, key: str) -> str:
        return f"{self._ns}:q:{key}"

    async def charge(
        self, key: str, amount: int, limit: int | None, *, dedupe: str | None, ttl_s: int
    ) -> ChargeResult:
        keys = [self._key(key), self._key(f"dedupe:{dedupe}") if dedupe else ""]
        args = [amount, "" if limit is None else limit, ttl_s]
        status, used = await self._charge(keys=keys, args=args)
        return ChargeResult(status.decode() if isinstance(status, bytes) else status, int(used))

    async def seed(self, key: str, value: int, *, ttl_s: int) -> None:
        await self._redis.set(self._key(key), value, nx=True, ex=ttl_s)

    async def used(self, key: str) -> int | None:
        value = await self._redis.get(self._key(key))
        return None if value is None else int(value)

    async def acquire(self, key: str, holder: str, limit: int, *, lease_s: float) -> bool:
        lease_ms = max(1, int(lease_s * 1000))
        return bool(await self._acquire(keys=[self._key(key)], args=[holder, limit, lease_ms]))

    async def release(self, key: str, holder: str) -> None:
        await self._redis.zrem(self._key(key), holder)

    async def holders(self, key: str) -> int:
        return int(await self._holders(keys=[self._key(key)]))

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> TakeResult:
        allowed, tokens, retry = await self._take(keys=[self._key(key)], args=[rate, burst, cost])
        return TakeResult(bool(allowed), float(tokens), float(retry))
