"""Dynamic batching for one model: requests' rows are gathered into one prediction.

One ``Batcher`` per loaded model, so rows of different models never share a batch. A
batch goes as soon as it holds ``max_batch_size`` rows, or when its first request
has waited ``wait_s``: a partial batch is never held longer than that. Each request is
checked against the signature on its own before it joins, so one bad request cannot
fail the others. The prediction itself is awaited (it runs in the tenant's sandboxed
worker), so nothing tenant-supplied ever runs on the event loop.

Why not Ray's ``@serve.batch``: it keeps one queue per decorated method, so in a replica
serving many models it gathers one batch across all of them and only then splits it by
multiplexed model id; under mixed traffic of N models each sub-batch holds about 1/N of
``max_batch_size`` rows. A queue per model fills each model's batch on its own, and the
batch goes to the model's sandboxed worker, which Serve does not know about.
``bench/batching.py`` measures this batcher against ``@serve.batch`` with the same model
and settings: if Ray's catches up, replace this module with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

Arrays = dict[str, np.ndarray]
IDLE_S = 30.0
Predict = Callable[[Arrays, float], Awaitable[Arrays]]  # (batch, deadline in seconds)


@dataclass
class _Pending:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays] = field(repr=False)


class Batcher:
    def __init__(
        self,
        predict: Predict,
        *,
        max_batch_size: int,
        wait_s: float,
        timeout_s: float = 30.0,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # how many predictions ran (for tests and metrics)

    async def submit(self, inputs: Arrays) -> Arrays:
        """Predict ``inputs`` (already checked; batch-major) as part of some batch."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        rows = len(next(iter(inputs.values()))) if inputs else 0
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(inputs, rows, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:  # an idle batcher stops its task (an evicted model leaves nothing running)
                batch = [await asyncio.wait_for(self._queue.get(), IDLE_S)]
            except TimeoutError:
                if self._queue.empty():
                    return
                continue
            rows = batch[0].rows
            deadline = asyncio.get_running_loop().time() + self.wait_s
            while rows < self.max_batch_size:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 and self._queue.empty():
                    break
                try:
                    item = (
                        self._queue.get_nowait()
                        if left <= 0
                        else await asyncio.wait_for(self._queue.get(), left)
                    )
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                if rows + item.rows > self.max_batch_size:
                    await self._flush(batch)  # it would overflow: send what we have first
                    batch, rows = [item], item.rows
                    continue
                batch.append(item)
                rows += item.rows
            await self._flush(batch)

    async def _flush(self, batch: list[_Pending]) -> None:
        batch = [p for p in batch if not p.future.cancelled()]
        if not batch:
            return
        try:
            outputs = await self._predict(_concat([p.inputs for p in batch]), self.timeout_s)
            parts = _split(outputs, [p.rows for p in batch])
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        finally:
            self.batches += 1
        for pending, part in zip(batch, parts, strict=True):
            if not pending.future.done():
                pending.future.set_result(part)


def _concat(requests: list[Arrays]) -> Arrays:
    if len(requests) == 1:
        return requests[0]
    return {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}


def _split(outputs: Arrays, rows: list[int]) -> list[Arrays]:
    if len(rows) == 1:
        return [outputs]
    total, edges = sum(rows), np.cumsum(rows)[:-1]
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            raise ValueError(f"output '{name}' is not one row per input row; it cannot be batched")
    pieces = {name: np.split(value, edges) for name, value in outputs.items()}
    return [{name: pieces[name][i] for name in outputs} for i in range(len(rows))]
