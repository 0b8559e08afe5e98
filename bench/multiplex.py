"""Many small models behind shared deployments: 100 tiny ONNX models of 10 tenants,
Zipf-distributed traffic (s = 1.1) from 16 concurrent clients; each tenant's models load
in that tenant's sandboxed runtime worker (started on its first request) and the
gateway's model cache (by default 256 models or 2 GB of artifacts) keeps them after
their first request. Reports the cache hit rate (``x-atrium-model-cache``), p50/p99 of
all requests, and how long requests that had to load their model took, worker start
included (target < 1 s).

    python -m bench.multiplex [--models 100] [--tenants 10] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.serving_common import running
from serve_apps.runtime.samples import X, onnx


async def _traffic(
    url: str, names: list[tuple[str, str]], requests: int, concurrency: int
) -> list[tuple[float, str, int]]:
    rng = np.random.default_rng(3)
    weights = 1.0 / np.arange(1, len(names) + 1) ** 1.1
    picks = list(rng.choice(len(names), size=requests, p=weights / weights.sum()))
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X[0].tolist()}]}
    results: list[tuple[float, str, int]] = []
    async with httpx.AsyncClient(timeout=60) as http:

        async def client() -> None:
            while picks:
                key, name = names[picks.pop()]
                started = time.perf_counter()
                answer = await http.post(
                    f"{url}/v2/models/{name}/infer",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )
                elapsed = time.perf_counter() - started
                results.append(
                    (elapsed, answer.headers.get("x-atrium-model-cache", ""), answer.status_code)
                )

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atrium-bench-multiplex-"))
    with running(work / "home", fast=True, plan="enterprise") as first:
        tenants = [first] + [
            first.tenant(f"tenant-{i}", "enterprise") for i in range(1, args.tenants)
        ]
        names = []
        for n in range(args.models):
            folder = work / f"m{n}"
            folder.mkdir()
            stack = tenants[n % len(tenants)]
            stack.deploy(f"m{n}", onnx(folder)[0], "onnx")
            names.append((stack.key, f"m{n}"))
        results = asyncio.run(_traffic(first.platform.serve, names, args.requests, concurrency=16))
    latencies = sorted(r[0] for r in results)
    misses = sorted(r[0] for r in results if r[1] == "miss")
    errors = sum(1 for r in results if r[2] != 200)
    hit_rate = 1 - len(misses) / len(results)
    print(
        f"{args.models} models of {args.tenants} tenants, {len(results)} requests (Zipf s=1.1),"
        " concurrency 16"
    )
    print(
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {latencies[int(0.99 * len(latencies))] * 1000:.1f} ms, errors {errors}"
    )
    worst = misses[-1] if misses else 0.0
    typical = misses[len(misses) // 2] if misses else 0.0
    print(
        f"cold loads: {len(misses)}, median {typical * 1000:.0f} ms,"
        f" slowest {worst * 1000:.0f} ms (target < 1000 ms)"
    )
    print(f"model-cache hit rate {hit_rate:.1%}")


if __name__ == "__main__":
    main()
