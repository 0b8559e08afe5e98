"""Atomic quota primitives, in-process or in Redis (Lua), with one contract.

- ``charge``: add to a counter only if it stays within the limit, once per dedupe key.
- ``acquire``/``release``: concurrency slots held as leases that expire if not renewed,
  so a crashed holder never keeps its slot.
- ``take``: a token bucket (rate limit).
- ``reserve``/``unreserve``: amounts held against a counted quota (stored bytes,
  deployments) while the work that will use them runs; see ``reserve``.

A counter that does not exist yet answers ``NEEDS_SEED``: the caller seeds it from
the usage ledger (``seed``), so a restart or a flushed Redis never forgets usage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: str  # "charged" | "duplicate" | "exceeded" | "needs_seed"
    used: int


@dataclass(frozen=True, slots=True)
class ReserveResult:
    status: str  # "reserved" | "exceeded" | "stale"
    used: int  # the base plus what the other live reservations hold


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

    async def epoch(self, key: str) -> int:
        """Read before the ``base`` of a ``reserve`` is read from the database."""

    async def reserve(
        self,
        key: str,
        holder: str,
        amount: int,
        limit: int | None,
        *,
        base: int,
        since: int,
        lease_s: float,
    ) -> ReserveResult:
        """Make ``holder`` hold ``amount`` if ``base`` (what is committed in the database)
        plus every other live reservation plus ``amount`` stays within ``limit``; a holder
        may always shrink. ``stale`` when a reservation went away (committed, failed or
        expired) after ``since`` was read: the caller reads ``epoch`` and ``base`` again,
        so bytes that moved from a reservation into the database are never missed."""

    async def renew(self, key: str, holder: str, *, lease_s: float) -> bool: ...

    async def unreserve(self, key: str, holder: str) -> None: ...

    async def reserved(self, key: str) -> int: ...


@dataclass
class _Held:
    holders: dict[str, tuple[int, float]] = field(default_factory=dict)  # amount, expiry
    seq: int = 0
    floor: int = 0

    def purge(self, now: float) -> None:
        expired = [h for h, (_, t) in self.holders.items() if t <= now]
        for holder in expired:
            del self.holders[holder]
        if expired:
            self.bump()

    def bump(self) -> None:
        self.seq += 1
        self.floor = self.seq


class LocalQuotaBackend:
    """One process: the event loop runs each method without interleaving, so it is atomic."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._dedupe: dict[str, float] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._held: dict[str, _Held] = {}

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

    async def epoch(self, key: str) -> int:
        return self._held.setdefault(key, _Held()).seq

    async def reserve(
        self,
        key: str,
        holder: str,
        amount: int,
        limit: int | None,
        *,
        base: int,
        since: int,
        lease_s: float,
    ) -> ReserveResult:
        held, now = self._held.setdefault(key, _Held()), time.monotonic()
        held.purge(now)
        if since < held.floor:
            return ReserveResult("stale", 0)
        used = base + sum(a for h, (a, _) in held.holders.items() if h != holder)
        mine = held.holders.get(holder, (0, 0.0))[0]
        if limit is not None and amount > mine and used + amount > limit:
            return ReserveResult("exceeded", used)
        held.holders[holder] = (amount, now + lease_s)
        return ReserveResult("reserved", used)

    async def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        held, now = self._held.setdefault(key, _Held()), time.monotonic()
        held.purge(now)
        if holder not in held.holders:
            return False
        held.holders[holder] = (held.holders[holder][0], now + lease_s)
        return True

    async def unreserve(self, key: str, holder: str) -> None:
        held = self._held.get(key)
        if held is not None and held.holders.pop(holder, None) is not None:
            held.bump()

    async def reserved(self, key: str) -> int:
        held = self._held.setdefault(key, _Held())
        held.purge(time.monotonic())
        return sum(a for a, _ in held.holders.values())


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

# Reservations: KEYS[1] a hash holder -> "amount:expiry_ms", KEYS[2] a hash with the
# sequence number ``seq`` and ``floor`` (the seq of the last reservation that went away).
# Both live a day past their last use, so the sequence never restarts under a caller.
_PURGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local live, purged = {}, false
for i = 1, #all, 2 do
  local value = all[i + 1]
  local sep = string.find(value, ':', 1, true)
  if tonumber(string.sub(value, sep + 1)) <= now then
    redis.call('HDEL', KEYS[1], all[i])
    purged = true
  else
    live[all[i]] = tonumber(string.sub(value, 1, sep - 1))
  end
end
if purged then
  redis.call('HSET', KEYS[2], 'floor', redis.call('HINCRBY', KEYS[2], 'seq', 1))
end
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PEXPIRE', KEYS[2], 86400000)
"""

_RESERVE = (
    _PURGE
    + """
local holder, amount, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[2], 'floor') or '0') then
  return {'stale', 0}
end
local used, mine = base, live[holder] or 0
for h, a in pairs(live) do
  if h ~= holder then used = used + a end
end
if ARGV[3] ~= '' and amount > mine and used + amount > tonumber(ARGV[3]) then
  return {'exceeded', used}
end
redis.call('HSET', KEYS[1], holder, ARGV[2] .. ':' .. (now + tonumber(ARGV[6])))
return {'reserved', used}
"""
)

_RENEW = (
    _PURGE
    + """
local amount = live[ARGV[1]]
if not amount then return 0 end
local value = string.format('%d', amount) .. ':' .. (now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], ARGV[1], value)
return 1
"""
)

_UNRESERVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], 'floor', redis.call('HINCRBY', KEYS[2], 'seq', 1))
end
"""

_RESERVED = (
    _PURGE
    + """
local total = 0
for _, a in pairs(live) do total = total + a end
return total
"""
)


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
        self._reserve = redis.register_script(_RESERVE)
        self._renew = redis.register_script(_RENEW)
        self._unreserve = redis.register_script(_UNRESERVE)
        self._reserved = redis.register_script(_RESERVED)

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

    def _held(self, key: str) -> list[str]:
        return [self._key(f"{key}:holders"), self._key(f"{key}:seq")]

    async def epoch(self, key: str) -> int:
        value = await self._redis.hget(self._key(f"{key}:seq"), "seq")
        return int(value or 0)

    async def reserve(
        self,
        key: str,
        holder: str,
        amount: int,
        limit: int | None,
        *,
        base: int,
        since: int,
        lease_s: float,
    ) -> ReserveResult:
        lease_ms = max(1, int(lease_s * 1000))
        args: list[str | int] = [holder, amount, "" if limit is None else limit, base]
        args += [since, lease_ms]
        status, used = await self._reserve(keys=self._held(key), args=args)
        return ReserveResult(status.decode() if isinstance(status, bytes) else status, int(used))

    async def renew(self, key: str, holder: str, *, lease_s: float) -> bool:
        lease_ms = max(1, int(lease_s * 1000))
        return bool(await self._renew(keys=self._held(key), args=[holder, lease_ms]))

    async def unreserve(self, key: str, holder: str) -> None:
        await self._unreserve(keys=self._held(key), args=[holder])

    async def reserved(self, key: str) -> int:
        return int(await self._reserved(keys=self._held(key)))
