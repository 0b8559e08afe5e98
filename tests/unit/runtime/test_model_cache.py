"""The per-replica model cache evicts the least recently used, by count and by size."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.sandbox import Bubblewrap, Limits
from serve_apps.runtime.batching import Arrays, Batcher
from serve_apps.runtime.cache import ModelCache, Served
from serve_apps.runtime.workers import WorkerPool, WorkerSettings


class _Worker:
    """Stands in for a live runtime worker (the cache only asks whether it is alive)."""

    alive = True

    async def unload(self, key: str) -> None:
        pass


async def _echo(inputs: Arrays, timeout_s: float) -> Arrays:
    return inputs


def _served(size: int) -> Served:
    batcher = Batcher(_echo, max_batch_size=1, wait_s=0)
    return Served("ten_a", _Worker(), batcher, size)  # type: ignore[arg-type]


def _kept(capacity: int, budget: int, sizes: list[int], touch: str | None = None) -> list[str]:
    async def run() -> list[str]:
        cache = ModelCache(
            control_url="http://127.0.0.1:9",
            internal_token="t",
            pool=WorkerPool(Bubblewrap(), WorkerSettings(Limits())),  # never starts one here
            capacity=capacity,
            budget_bytes=budget,
        )
        for n, size in enumerate(sizes):
            cache._remember(f"v{n}", _served(size))
            if touch is not None and cache.holds(touch):
                await cache.get(touch, "ten_a")
        await asyncio.sleep(0)
        kept: Any = list(cache._models)
        await cache.close()
        return list(kept)

    return asyncio.run(run())


def test_the_least_recently_used_go_first() -> None:
    assert _kept(3, 10**9, [1, 1, 1, 1, 1]) == ["v2", "v3", "v4"]
    assert _kept(3, 10**9, [1, 1, 1, 1, 1], touch="v0") == ["v3", "v4", "v0"]


def test_the_memory_budget_bounds_the_cache_too() -> None:
    assert _kept(100, 100, [40, 40, 40]) == ["v1", "v2"]
    assert _kept(100, 100, [500]) == ["v0"]  # one model larger than the budget still serves
