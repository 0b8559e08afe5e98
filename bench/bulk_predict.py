"""Bulk prediction: 1,000-row requests through the platform against the runtime library
called in-process on the same rows (the physical limit of this machine). A small ONNX
MLP (32 inputs, two hidden layers of 256), binary v2 tensors, shared deployment,
HAProxy ingress, concurrency 4; the model runs in the tenant's sandboxed worker
(``ATRIUM_WORKER_CPUS=2``: both cores, as the in-process baseline has).
Printed last: predictions/s platform / in-process (target >= 0.6).

    python -m bench.bulk_predict [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.batching import mlp
from bench.serving_common import line, running
from serve_apps.runtime import load_model

ROWS, WIDTH = 1_000, 32


def in_process(path: Path, rows: np.ndarray, seconds: float) -> float:
    """Rows/s of the runtime library predicting 1,000-row batches in this process."""
    model = load_model("onnx", path, device="cpu")
    model.predict({"x": rows})
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict({"x": rows})
        n += 1
    return n * ROWS / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atrium-bench-bulk-"))
    path = mlp(work, width=WIDTH, hidden=256, layers=2)
    rows = np.random.default_rng(2).normal(size=(ROWS, WIDTH)).astype(np.float32)
    raw = rows.tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [ROWS, WIDTH],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    extra = {"Inference-Header-Content-Length": str(len(header))}
    # the worker may use both cores, as the in-process baseline does
    with running(work / "home", fast=True, env={"ATRIUM_WORKER_CPUS": "2"}) as stack:
        stack.deploy("bulk", path, "onnx", batching={"max_batch_size": 4096,
                     "batch_wait_timeout_ms": 1})  # fmt: skip
        platform = stack.measure(
            "bulk", header + raw, seconds=args.seconds, concurrency=4, headers=extra
        )
    local = in_process(path, rows, args.seconds)
    through = platform.rps * ROWS
    print(line("platform, 1,000-row requests", platform))
    print(f"platform: {through:,.0f} predictions/s; in-process runtime: {local:,.0f} predictions/s")
    print(f"platform / in-process = {through / local:.2f} (target >= 0.6)")


if __name__ == "__main__":
    main()
