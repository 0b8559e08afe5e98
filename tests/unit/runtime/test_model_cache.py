"""The per-replica model cache evicts the least recently used, by count and by size."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serve_apps.runtime.batching import Batcher
from serve_apps.runtime.cache import ModelCache, Served


def _served(size: int) -> Served:
    batcher = Batcher(lambda x: x, max_batch_size=1, wait_s=0)
    return Served("ten_a", model=None, batcher=batcher, size_bytes=size)  # type: ignore[arg-type]


def _kept(capacity: int, budget: int, sizes: list[int], touch: str | None = None) -> list[str]:
    async def run() -> list[str]:
        with ThreadPoolExecutor(1) as pool:
            cache = ModelCache(
                control_url="http://127.0.0.1:9",
                internal_token="t",
                executor=pool,
                capacity=capacity,
                budget_bytes=budget,
            )
            for n, size in enumerate(sizes):
                cache._remember(f"v{n}", _served(size))
                if touch is not None and cache.holds(touch):
                    await cache.get(touch, "ten_a")
            await asyncio.sleep(0)
            kept: Any = list(cache._models)
            await cache._http.aclose()
            return list(kept)

    return asyncio.run(run())


def test_the_least_recently_used_go_first() -> None:
    assert _kept(3, 10**9, [1, 1, 1, 1, 1]) == ["v2", "v3", "v4"]
    assert _kept(3, 10**9, [1, 1, 1, 1, 1], touch="v0") == ["v3", "v4", "v0"]


def test_the_memory_budget_bounds_the_cache_too() -> None:
    assert _kept(100, 100, [40, 40, 40]) == ["v1", "v2"]
    assert _kept(100, 100, [500]) == ["v0"]  # one model larger than the budget still serves
