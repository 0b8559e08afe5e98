"""The full inference path against a bare Ray Serve deployment of the same model.

For each proxy mode (Serve's default Python proxy; HAProxy + throughput-optimized):
1. `atrium up` with a tiny scikit-learn model deployed (shared mode): single-row v2
   JSON requests through the gateway (API key, rate limit, quota, usage, routing,
   signature check, multiplexed runtime with per-model batching);
2. the same model as a bare Serve deployment answering the same request.
Both at concurrency 32 with keep-alive connections; requests/s, p50 and p99. The
ratio gateway / bare is printed last (target >= 0.8, and p99 at most 2x bare Serve's).

    python -m bench.serving_overhead [--seconds 10] [--modes default,fast]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx

from bench.loadgen import Result, load
from bench.serving_common import baseline, line, running
from serve_apps.runtime.samples import MATRIX, X, sklearn

ROW = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": X[0].tolist()}]}
).encode()


def _gateway(home: Path, model: Path, fast: bool, seconds: float) -> Result:
    with running(home, fast=fast) as stack:
        stack.deploy("clf", model, "sklearn-skops", MATRIX)
        return stack.measure("clf", ROW, seconds=seconds, concurrency=32)


def _bare(model: Path, fast: bool, seconds: float) -> Result:
    with baseline("bare_serve.py", str(model), fast=fast) as port:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while httpx.post(url, content=ROW, timeout=30).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        load("127.0.0.1", port, "/", body=ROW, seconds=2)
        return load("127.0.0.1", port, "/", body=ROW, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", default="default,fast")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atrium-bench-serving-"))
    model = sklearn(work)[0]
    ratios = []
    for mode in args.modes.split(","):
        fast = mode == "fast"
        gateway = _gateway(work / f"home-{mode}", model, fast, args.seconds)
        bare = _bare(model, fast, args.seconds)
        print(line(f"{mode}: atrium gateway", gateway), flush=True)
        print(line(f"{mode}: bare Serve", bare), flush=True)
        ratios.append((mode, gateway.rps / bare.rps, gateway, bare))
    print("concurrency 32, single-row v2 JSON requests, keep-alive")
    for mode, ratio, gateway, bare in ratios:
        p99 = gateway.percentile(99) / bare.percentile(99)
        print(
            f"{mode}: gateway / bare = {ratio:.2f} (target >= 0.8); p99 gateway / bare ="
            f" {p99:.2f} (target <= 2); gateway {gateway.rps:.0f} req/s,"
            f" p99 {gateway.percentile(99) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
