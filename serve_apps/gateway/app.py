"""The ingress of every inference request (Serve's HTTP port).

Three parts, as KServe separates them: admission (who is calling and may they: the
control plane's own policy, with the tenant's inference rate), the protocol handlers
(``endpoints``: Open Inference Protocol v2, tritonclient-compatible, and KServe v1)
and the data plane (``dataplane``: the deployment, its version, signature checks,
queues, metering, and the model client that reaches the tenant's sandboxed worker).
This module routes paths to handlers and renders every error as Problem Details.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from control_plane import errors
from control_plane.auth.admission import Admission
from control_plane.auth.permissions import Action
from control_plane.kit.problems import error_body
from control_plane.plan.catalog import Limit
from serve_apps.gateway import protocol
from serve_apps.gateway.client import ModelClient
from serve_apps.gateway.config import GatewayConfig, RoutingTable
from serve_apps.gateway.dataplane import DataPlane
from serve_apps.gateway.endpoints import JSON, Call, V1Endpoints, V2Endpoints
from serve_apps.gateway.identity import Identity
from serve_apps.runtime.cache import model_cache

log = logging.getLogger("atrium.gateway")
_V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/infer|/ready)?$")
_V1 = re.compile(r"^/v1/models/([^/:]+):predict$")
_HEALTH = frozenset({"/v2/health/live", "/v2/health/ready"})
Handler = Callable[[Call], Awaitable[Response] | Response]


class Gateway:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = GatewayConfig.model_validate(config)
        self._identity = Identity(self._config)
        self._admission = Admission(self._identity.authenticator, self._identity.quotas)
        self._handles: dict[str, Any] = {}
        self._models = model_cache(self._config)
        client = ModelClient(self._models, self._handle_of)
        self._dataplane = DataPlane(
            client, self._identity.quotas, tenant_max_in_flight=self._config.tenant_max_in_flight
        )
        limit = self._config.max_body_bytes
        self._v2 = V2Endpoints(self._dataplane, max_body_bytes=limit)
        self._v1 = V1Endpoints(self._dataplane, max_body_bytes=limit)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A new routing table from the reconciler (no restart, requests keep flowing)."""
        table = RoutingTable.model_validate(user_config)
        if table.auth_epoch != self._dataplane.auth_epoch:
            self._identity.authenticator.invalidate()
            self._identity.quotas.invalidate()
        self._dataplane.reconfigure(table)

    async def check_health(self) -> None:
        """Serve's periodic health check (on the replica's event loop): starts the
        background work and keeps spare runtime workers ready for new tenants."""
        self._identity.start()
        self._models.prewarm()

    async def __call__(self, request: Request) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        self._identity.start()
        headers: dict[str, str] = {}  # Serve's proxy adds x-request-id itself
        try:
            return await self._dispatch(request, request_id, headers)
        except errors.AtriumError as exc:
            return _problem(exc, request, request_id, headers)
        except protocol.ProtocolError as exc:
            return _problem(errors.BadRequest(str(exc)), request, request_id, headers)
        except Exception:
            log.exception("inference request %s failed", request_id)
            failed = errors.PredictionFailed("the model failed on this request")
            return _problem(failed, request, request_id, headers)

    async def _dispatch(
        self, request: Request, request_id: str, headers: dict[str, str]
    ) -> Response:
        path = request.url.path
        if path == "/v2":  # server metadata (tritonclient's get_server_metadata)
            return Response(json.dumps(protocol.server_metadata()), headers={**headers, **JSON})
        if path in _HEALTH:
            return Response(status_code=200, headers=headers)
        handler, name, version = self._handler(path)
        admitted = await self._admission.admit(
            request.headers.get("authorization"),
            Action.INFERENCE,
            rate=Limit.INFERENCE_RPS,
            tenants_only=True,
        )
        headers.update(admitted.headers)
        assert admitted.principal.tenant_id is not None
        call = Call(
            request=request,
            request_id=request_id,
            tenant_id=admitted.principal.tenant_id,
            name=name,
            pinned=version or _pin(request),
            headers=headers,
        )
        response = handler(call)
        return response if isinstance(response, Response) else await response

    def _handler(self, path: str) -> tuple[Handler, str, str | None]:
        if (v2 := _V2.match(path)) is not None:
            kind = v2.group(3)
            handler: Handler = (
                self._v2.infer
                if kind == "/infer"
                else self._v2.ready
                if kind == "/ready"
                else self._v2.metadata
            )
            return handler, v2.group(1), v2.group(2)
        if (v1 := _V1.match(path)) is not None:
            return self._v1.predict, v1.group(1), None
        raise errors.NotFound(f"no inference route {path}")

    def _handle_of(self, app: str) -> Any:
        handle = self._handles.get(app)
        if handle is None:
            handle = self._handles[app] = serve.get_app_handle(app)
        return handle


def _pin(request: Request) -> str | None:
    return request.query_params.get("version") or request.headers.get("x-atrium-model-version")


def _problem(
    error: errors.AtriumError, request: Request, request_id: str, headers: dict[str, str]
) -> Response:
    body = error_body(error, instance=request.url.path, request_id=request_id)
    return Response(
        json.dumps(body),
        status_code=error.status,
        headers={**headers, **error.headers, "content-type": "application/problem+json"},
    )


def build(config: dict[str, Any]) -> Any:
    """``import_path: serve_apps.gateway.app:build``."""
    deployment: Any = serve.deployment(Gateway)
    return deployment.bind(config)
