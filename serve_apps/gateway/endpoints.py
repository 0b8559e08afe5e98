"""The protocol handlers (KServe's ``V2Endpoints`` and ``V1Endpoints``): turn an HTTP
request into tensors for the data plane and its answer back into the protocol's
response. Open Inference Protocol v2 (JSON and tritonclient's binary extension) and
KServe v1 ``:predict``. They know nothing of workers, quotas or credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from control_plane import errors
from serve_apps.gateway import protocol
from serve_apps.gateway.config import Route, RouteTarget
from serve_apps.gateway.dataplane import DataPlane

JSON = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Call:
    """One admitted inference request: whose, which deployment, pinned to what."""

    request: Request
    request_id: str
    tenant_id: str
    name: str
    pinned: str | None
    headers: dict[str, str]  # for the response (RateLimit-*, cache)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"the request exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"the request exceeds {limit} bytes")
    return b"".join(chunks)


class V2Endpoints:
    def __init__(self, dataplane: DataPlane, *, max_body_bytes: int) -> None:
        self._dataplane = dataplane
        self._max_body = max_body_bytes

    def metadata(self, call: Call) -> Response:
        route, target = self._dataplane.resolve(call.tenant_id, call.name, call.pinned)
        signature = self._dataplane.signature(target)
        versions = [str(t.version) for t in route.targets]
        body = protocol.model_metadata(route.name, versions, signature)
        return Response(json.dumps(body), headers={**call.headers, **JSON})

    def ready(self, call: Call) -> Response:
        self._dataplane.resolve(call.tenant_id, call.name, call.pinned)
        return Response(status_code=200, headers=call.headers)

    async def infer(self, call: Call) -> Response:
        route, target = self._dataplane.resolve(call.tenant_id, call.name, call.pinned)
        _require_post(call)
        body = await read_body(call.request, self._max_body)
        parsed = protocol.parse_v2(body, call.request.headers.get(protocol.HEADER_LENGTH))
        _cache_header(self._dataplane, call, route, target)
        outputs = await self._dataplane.infer(
            route, target, parsed.inputs, request_id=call.request_id
        )
        content, extra = protocol.v2_response(
            model_name=route.name,
            model_version=str(target.version),
            request=parsed,
            outputs=outputs,
        )
        return Response(content, headers={**call.headers, **extra})


class V1Endpoints:
    def __init__(self, dataplane: DataPlane, *, max_body_bytes: int) -> None:
        self._dataplane = dataplane
        self._max_body = max_body_bytes

    async def predict(self, call: Call) -> Response:
        route, target = self._dataplane.resolve(call.tenant_id, call.name, call.pinned)
        _require_post(call)
        body = await read_body(call.request, self._max_body)
        inputs = protocol.parse_v1(body, self._dataplane.signature(target))
        _cache_header(self._dataplane, call, route, target)
        outputs = await self._dataplane.infer(route, target, inputs, request_id=call.request_id)
        return Response(protocol.v1_response(outputs), headers={**call.headers, **JSON})


def _require_post(call: Call) -> None:
    if call.request.method != "POST":
        raise errors.MethodNotAllowed("inference takes POST")


def _cache_header(dataplane: DataPlane, call: Call, route: Route, target: RouteTarget) -> None:
    hit = dataplane.cached(route, target)
    if hit is not None:  # shared: say whether the model had to be loaded first
        call.headers["x-atrium-model-cache"] = "hit" if hit else "miss"
