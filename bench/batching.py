"""Dynamic batching through the platform: the same ONNX MLP deployed twice, with
batches of up to 64 rows and with batching off (max_batch_size 1), single-row v2
requests (binary tensors, as tritonclient sends them) at concurrency 64, with Serve's
HAProxy ingress. The MLP is big enough that one single-row prediction takes
milliseconds on this CPU (its weights do not fit in cache).

A second baseline is Ray's own ``@serve.batch`` (``serve_batch.py``): the same model and
batch settings in a bare Serve deployment. If it catches up with the platform's batcher
under this traffic, the hand-written batcher (``serve_apps/runtime/batching.py``) has
lost its reason to exist. Printed last: throughput ratio batched / unbatched (target
>= 4) and both p99s (batched must be no worse), then batched / ``@serve.batch``.

    python -m bench.batching [--seconds 10] [--hidden 3072]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.loadgen import Result, load
from bench.serving_common import baseline, line, running

WIDTH, HIDDEN, LAYERS = 512, 3072, 3
MAX_BATCH_SIZE, WAIT_MS = 64, 2


def mlp(directory: Path, width: int = WIDTH, hidden: int = HIDDEN, layers: int = LAYERS) -> Path:
    """An ONNX multi-layer perceptron with random weights: ``width`` inputs, 8 outputs."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    sizes = [width] + [hidden] * layers + [8]
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        weights = (rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        inits.append(numpy_helper.from_array(weights, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"h{i}"]))
        current = f"h{i}"
        if i < layers:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = directory / "mlp.onnx"
    save(model, str(path))
    return path


def single_row_ms(path: Path) -> float:
    from serve_apps.runtime import load_model

    model = load_model("onnx", path, device="cpu")
    row = {"x": np.zeros((1, WIDTH), np.float32)}
    model.predict(row)
    started, n = time.perf_counter(), 50
    for _ in range(n):
        model.predict(row)
    return (time.perf_counter() - started) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="smaller for a smoke run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atrium-bench-batching-"))
    path = mlp(work, hidden=args.hidden)
    # the binary tensor extension, as tritonclient sends it: a JSON header, then raw bytes
    row = np.random.default_rng(1).normal(size=(1, WIDTH)).astype(np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, WIDTH],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(row)},
                }
            ]
        }
    ).encode()
    body, extra = header + row, {"Inference-Header-Content-Length": str(len(header))}
    with running(work / "home", fast=True) as stack:
        common = {"mode": "shared"}
        stack.deploy("batched", path, "onnx", batching={"max_batch_size": MAX_BATCH_SIZE,
                     "batch_wait_timeout_ms": WAIT_MS}, **common)  # fmt: skip
        stack.deploy("unbatched", path, "onnx", batching={"max_batch_size": 1,
                     "batch_wait_timeout_ms": 0}, **common)  # fmt: skip
        unbatched = stack.measure(
            "unbatched", body, seconds=args.seconds, concurrency=64, headers=extra
        )
        batched = stack.measure(
            "batched", body, seconds=args.seconds, concurrency=64, headers=extra
        )
    ray_batched = _serve_batch(path, body, extra, args.seconds)
    print(f"one single-row prediction in process: {single_row_ms(path):.1f} ms")
    print(line("unbatched (max_batch_size 1)", unbatched))
    print(line("batched (max_batch_size 64)", batched))
    print(line("bare Serve @serve.batch (64)", ray_batched))
    print(
        f"batched / unbatched throughput = {batched.rps / unbatched.rps:.1f}x (target >= 4);"
        f" p99 {batched.percentile(99) * 1000:.0f} ms vs {unbatched.percentile(99) * 1000:.0f} ms"
    )
    print(
        f"batched / @serve.batch throughput = {batched.rps / ray_batched.rps:.2f};"
        f" p99 {batched.percentile(99) * 1000:.0f} ms"
        f" vs {ray_batched.percentile(99) * 1000:.0f} ms"
    )


def _serve_batch(path: Path, body: bytes, headers: dict[str, str], seconds: float) -> Result:
    """The same requests against the model batched by Ray's ``@serve.batch``."""
    args = (str(path), str(MAX_BATCH_SIZE), str(WAIT_MS))
    with baseline("serve_batch.py", *args, fast=True) as port:
        warm = httpx.post(f"http://127.0.0.1:{port}/", content=body, headers=headers, timeout=60)
        assert warm.status_code == 200, warm.text[:300]
        load("127.0.0.1", port, "/", headers=headers, body=body, seconds=2, concurrency=64)
        return load(
            "127.0.0.1", port, "/", headers=headers, body=body, seconds=seconds, concurrency=64
        )


if __name__ == "__main__":
    main()
