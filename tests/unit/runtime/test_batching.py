"""Per-model dynamic batching: rows gathered, size capped, partial batches flushed."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from serve_apps.runtime.batching import Arrays, Batcher


class Recorder:
    def __init__(self, scale: float = 1.0) -> None:
        self.sizes: list[int] = []
        self.scale = scale

    async def __call__(self, inputs: Arrays, timeout_s: float) -> Arrays:
        (x,) = inputs.values()
        self.sizes.append(len(x))
        await asyncio.sleep(0.005)  # the worker takes a moment, as a real one does
        return {"y": x[:, 0] * self.scale}


def _rows(value: float, n: int = 1) -> Arrays:
    return {"x": np.full((n, 2), value, dtype=np.float32)}


def test_concurrent_requests_share_a_batch_and_get_their_own_rows() -> None:
    model = Recorder()

    async def main() -> list[Arrays]:
        batcher = Batcher(model, max_batch_size=64, wait_s=0.05)
        try:
            return await asyncio.gather(*(batcher.submit(_rows(i)) for i in range(20)))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert [r["y"].tolist() for r in results] == [[float(i)] for i in range(20)]
    assert sum(model.sizes) == 20 and len(model.sizes) < 5


def test_a_batch_never_exceeds_its_size() -> None:
    model = Recorder()

    async def main() -> None:
        batcher = Batcher(model, max_batch_size=8, wait_s=0.05)
        await asyncio.gather(*(batcher.submit(_rows(i, 3)) for i in range(10)))
        await batcher.close()

    asyncio.run(main())
    assert max(model.sizes) <= 8 and sum(model.sizes) == 30


def test_a_partial_batch_waits_no_longer_than_the_wait() -> None:
    model = Recorder()

    async def main() -> float:
        batcher = Batcher(model, max_batch_size=1000, wait_s=0.02)
        started = time.perf_counter()
        await batcher.submit(_rows(1))
        await batcher.close()
        return time.perf_counter() - started

    assert asyncio.run(main()) < 0.5
    assert model.sizes == [1]


def test_two_models_never_share_a_batch() -> None:
    first, second = Recorder(1.0), Recorder(10.0)

    async def main() -> list[Arrays]:
        a = Batcher(first, max_batch_size=64, wait_s=0.05)
        b = Batcher(second, max_batch_size=64, wait_s=0.05)
        jobs = [(a if i % 2 else b).submit(_rows(i)) for i in range(10)]
        try:
            return await asyncio.gather(*jobs)
        finally:
            await a.close()
            await b.close()

    results = asyncio.run(main())
    assert [r["y"][0] for r in results] == [i * (1.0 if i % 2 else 10.0) for i in range(10)]
    assert sum(first.sizes) == 5 and sum(second.sizes) == 5


def test_a_failing_prediction_fails_its_batch_and_the_batcher_goes_on() -> None:
    calls = []

    async def flaky(inputs: Arrays, timeout_s: float) -> Arrays:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the model raised")
        return {"y": inputs["x"][:, 0]}

    async def main() -> Arrays:
        batcher = Batcher(flaky, max_batch_size=4, wait_s=0.0)
        with pytest.raises(RuntimeError, match="the model raised"):
            await batcher.submit(_rows(1))
        try:
            return await batcher.submit(_rows(2))
        finally:
            await batcher.close()

    assert asyncio.run(main())["y"].tolist() == [2.0]
