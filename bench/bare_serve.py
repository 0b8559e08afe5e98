"""The baseline of ``serving_overhead.py``: the same model as a bare Ray Serve
deployment (no gateway, no auth, no quotas), answering the same v2 JSON request.

    python -m bench.bare_serve MODEL.skops PORT    (runs until killed)
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import skops.io as sio
from ray import serve
from starlette.requests import Request
from starlette.responses import Response


class Bare:
    def __init__(self, path: str) -> None:
        self._model = sio.load(path, trusted=sio.get_untrusted_types(file=path))

    async def __call__(self, request: Request) -> Response:
        tensor = (await request.json())["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        out = np.asarray(self._model.predict(rows))
        body = {
            "outputs": [{"name": "predictions", "shape": list(out.shape), "data": out.tolist()}]
        }
        return Response(json.dumps(body), media_type="application/json")


def main() -> None:
    import ray

    path, port = sys.argv[1], int(sys.argv[2])
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment: Any = serve.deployment(Bare, max_ongoing_requests=256)
    serve.run(deployment.bind(path), route_prefix="/", name="bare")
    print("ready", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
