"""The second baseline of ``batching.py``: the same ONNX model as a bare Ray Serve
deployment batched by Ray's own ``@serve.batch`` (same batch size and wait, same
single-thread ONNX session as the platform's loader), answering the same binary v2
request. No gateway, no sandboxed worker, no per-model queues.

    python -m bench.serve_batch MODEL.onnx MAX_BATCH_SIZE WAIT_MS PORT    (runs until killed)
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import Response


class Batched:
    def __init__(self, path: str, max_batch_size: int, wait_s: float) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        predict: Any = self.predict  # the settings of this run, not the decorator's defaults
        predict.set_max_batch_size(max_batch_size)
        predict.set_batch_wait_timeout_s(wait_s)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def predict(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        out = self._session.run(None, {"x": np.concatenate(rows)})[0]
        return list(np.split(out, np.cumsum([len(r) for r in rows])[:-1]))

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        size = int(request.headers["inference-header-content-length"])
        spec = json.loads(body[:size])["inputs"][0]
        rows = np.frombuffer(body[size:], dtype=np.float32).reshape(spec["shape"])
        out = await self.predict(rows)
        answer = {"outputs": [{"name": "y", "shape": list(out.shape), "data": out.tolist()}]}
        return Response(json.dumps(answer), media_type="application/json")


def main() -> None:
    import ray

    path, max_batch_size, wait_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000
    port = int(sys.argv[4])
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment: Any = serve.deployment(Batched, max_ongoing_requests=256)
    serve.run(deployment.bind(path, max_batch_size, wait_s), route_prefix="/", name="batched")
    print("ready", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
