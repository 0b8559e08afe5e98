"""Throughput of the quota check-and-charge, against baselines in the same run.

Redis: 32 concurrent tasks, each awaiting one operation at a time, for a fixed time:
  baseline  bare INCR sent through a redis-py pipeline (one round trip per INCR)
  backend   RedisQuotaBackend.charge: one Lua script (limit check + INCRBY + dedupe key)
  service   Quotas.charge: the call the gateway makes (limits cached, usage buffered)
In-process: LocalQuotaBackend.charge versus a plain dict increment.
Target (issue 3): Redis check-and-charge at least 0.5 of the INCR baseline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import REDIS_URL, sqlite_url, with_tenant
from control_plane.db import Database
from control_plane.kit.redis import connect
from control_plane.plan.catalog import Limit, load_catalog
from control_plane.quota.backend import LocalQuotaBackend, RedisQuotaBackend
from control_plane.quota.service import Quotas
from control_plane.usage.recorder import UsageRecorder

CONCURRENCY, SECONDS = 32, 3.0
PLANS = Path(__file__).resolve().parent.parent / "control_plane" / "plan" / "plans.yaml"


async def rate(op: Callable[[int], Awaitable[object]], seconds: float = SECONDS) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * CONCURRENCY

    async def worker(slot: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            await op(slot * 10_000_000 + n)
            n += 1
        counts[slot] = n

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return sum(counts) / (time.perf_counter() - started)


async def redis_rates() -> dict[str, float]:
    redis = connect(REDIS_URL, max_connections=CONCURRENCY)
    ns = f"bench{uuid.uuid4().hex[:8]}"
    backend = RedisQuotaBackend(redis, namespace=ns)
    await backend.seed("c", 0, ttl_s=600)
    db = Database(sqlite_url())
    tenant = await with_tenant(db)
    quotas = Quotas(
        db=db,
        backend=backend,
        catalog=load_catalog(PLANS),
        recorder=UsageRecorder(db),
        cache_ttl_s=60,
    )

    async def incr(_: int) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(f"{ns}:baseline")
            await pipe.execute()

    async def charge(n: int) -> None:
        await backend.charge("c", 1, 10**12, dedupe=None, ttl_s=600)

    async def service(n: int) -> None:
        await quotas.charge(tenant, Limit.MONTHLY_PREDICTIONS, 1, source_id=f"r{n}")

    try:
        for op in (incr, charge, service):  # warm up connections and scripts
            await rate(op, 0.5)
        results: dict[str, list[float]] = {"incr": [], "charge": [], "service": []}
        for _ in range(3):
            results["incr"].append(await rate(incr))
            results["charge"].append(await rate(charge))
            results["service"].append(await rate(service))
        return {name: sorted(values)[1] for name, values in results.items()}
    finally:
        await redis.delete(*[k async for k in redis.scan_iter(f"{ns}:*")] or ["_"])
        await redis.aclose()
        await db.dispose()


async def local_rates(n: int = 300_000) -> dict[str, float]:
    backend = LocalQuotaBackend()
    await backend.seed("c", 0, ttl_s=600)
    counters: dict[str, int] = {"c": 0}
    started = time.perf_counter()
    for _ in range(n):
        counters["c"] = counters["c"] + 1
    plain = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(n):
        await backend.charge("c", 1, 10**12, dedupe=None, ttl_s=600)
    charged = n / (time.perf_counter() - started)
    return {"dict": plain, "local": charged}


def main() -> None:
    redis = asyncio.run(redis_rates())
    local = asyncio.run(local_rates())
    print(f"Redis, {CONCURRENCY} concurrent callers, median of 3 rounds of {SECONDS}s:")
    print(f"  bare INCR (pipeline, 1 per round trip) {redis['incr']:10.0f} ops/s")
    print(f"  RedisQuotaBackend.charge (Lua)         {redis['charge']:10.0f} ops/s")
    print(f"  Quotas.charge (full service call)      {redis['service']:10.0f} ops/s")
    print("In-process:")
    print(f"  plain dict increment                   {local['dict']:10.0f} ops/s")
    print(f"  LocalQuotaBackend.charge               {local['local']:10.0f} ops/s")
    charge_ratio = redis["charge"] / redis["incr"]
    print(f"ratio Redis charge / INCR:          {charge_ratio:.2f}  (target >= 0.50)")
    print(f"ratio Quotas.charge / INCR:         {redis['service'] / redis['incr']:.2f}")
    local_ratio = local["local"] / local["dict"]
    print(f"ratio local charge / dict increment: {local_ratio:.3f}")


if __name__ == "__main__":
    main()
