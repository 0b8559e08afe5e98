"""The ingress of every inference request (Serve's HTTP port).

Authenticates the caller, applies the tenant's rate limit, resolves the deployment
name inside the caller's tenant, checks the tensors against the version's signature,
charges the monthly prediction quota (which meters usage), calls the model's
application through a Serve handle, and answers with ``RateLimit-*`` headers.
Routes: Open Inference Protocol v2 (``/v2/...``, tritonclient-compatible) and KServe
v1 (``/v1/models/{name}:predict``).
"""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from typing import Any

import numpy as np
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError
from starlette.requests import Request
from starlette.responses import Response

from cluster.sandbox import SandboxUnavailable
from control_plane import errors
from control_plane.auth.permissions import Action
from control_plane.kit.problems import error_body
from control_plane.plan.catalog import Limit
from serve_apps.gateway import protocol
from serve_apps.gateway.config import GatewayConfig, Route, RouteTarget, RoutingTable
from serve_apps.gateway.identity import Identity
from serve_apps.runtime import workers
from serve_apps.runtime.cache import WrongTenant, model_cache
from serve_apps.runtime.signature import InputChecker, InputError, Signature

log = logging.getLogger("atrium.gateway")
_V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/infer|/ready)?$")
_V1 = re.compile(r"^/v1/models/([^/:]+):predict$")


class Gateway:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = GatewayConfig.model_validate(config)
        self._identity = Identity(self._config)
        self._models = model_cache(self._config)
        self._in_flight: dict[str, int] = {}  # per deployment
        self._tenant_in_flight: dict[str, int] = {}
        self._table = RoutingTable()
        self._checkers: dict[str, InputChecker] = {}
        self._signatures: dict[str, Signature] = {}
        self._handles: dict[str, Any] = {}

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A new routing table from the reconciler (no restart, requests keep flowing)."""
        table = RoutingTable.model_validate(user_config)
        if table.auth_epoch != self._table.auth_epoch:
            self._identity.authenticator.invalidate()
            self._identity.quotas.invalidate()
        self._table = table
        self._checkers.clear()
        self._signatures.clear()

    async def __call__(self, request: Request) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        self._identity.start()
        headers: dict[str, str] = {}  # Serve's proxy adds x-request-id itself
        try:
            return await self._handle(request, request_id, headers)
        except errors.AtriumError as exc:
            return _problem(exc, request, request_id, headers)
        except protocol.ProtocolError as exc:
            return _problem(errors.BadRequest(str(exc)), request, request_id, headers)
        except Exception:
            log.exception("inference request %s failed", request_id)
            failed = errors.PredictionFailed("the model failed on this request")
            return _problem(failed, request, request_id, headers)

    async def _handle(self, request: Request, request_id: str, headers: dict[str, str]) -> Response:
        path = request.url.path
        if path in ("/v2/health/live", "/v2/health/ready", "/v2"):
            return Response(status_code=200, headers=headers)
        v2, v1 = _V2.match(path), _V1.match(path)
        if v2 is None and v1 is None:
            raise errors.NotFound(f"no inference route {path}")
        principal = await self._identity.authenticator.authenticate(
            request.headers.get("authorization")
        )
        if principal.tenant_id is None:
            raise errors.Forbidden("inference belongs to tenants")
        if not principal.can(Action.INFERENCE):
            raise errors.Forbidden("this credential lacks the 'inference' scope")
        tenant_id = principal.tenant_id
        headers.update(
            await self._identity.quotas.rate(
                tenant_id,
                Limit.INFERENCE_RPS,
                key_id=principal.api_key_id,
                key_rps=principal.key_rps,
            )
        )
        name = (v2 or v1).group(1)  # type: ignore[union-attr]
        route = self._table.routes.get(RoutingTable.key(tenant_id, name))
        if route is None:
            raise errors.NotFound(f"no deployment named '{name}'")
        pinned = (v2.group(2) if v2 else None) or _pin(request)
        target = _target(route, pinned)
        if v2 is not None and v2.group(3) != "/infer":
            return self._describe(route, target, v2.group(3) == "/ready", headers, request)
        if request.method != "POST":
            raise errors.MethodNotAllowed("inference takes POST")
        body = await self._body(request)
        signature = self._signature(target)
        if v2 is not None:
            parsed = protocol.parse_v2(body, request.headers.get(protocol.HEADER_LENGTH))
            inputs = parsed.inputs
        else:
            inputs = protocol.parse_v1(body, signature)
        checked = self._check(target, signature, inputs)
        if route.app is None:  # shared: say whether the model had to be loaded first
            hit = self._models.holds(target.version_id)
            headers["x-atrium-model-cache"] = "hit" if hit else "miss"
        outputs = await self._predict(route, target, tenant_id, checked, request_id)
        if v2 is not None:
            content, extra = protocol.v2_response(
                model_name=name, model_version=str(target.version), request=parsed, outputs=outputs
            )
            return Response(content, headers={**headers, **extra})
        return Response(
            protocol.v1_response(outputs), headers={**headers, "content-type": "application/json"}
        )

    async def _body(self, request: Request) -> bytes:
        limit = self._config.max_body_bytes
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

    def _signature(self, target: RouteTarget) -> Signature:
        signature = self._signatures.get(target.version_id)
        if signature is None:
            signature = Signature.model_validate(target.signature)
            self._signatures[target.version_id] = signature
        return signature

    def _check(
        self, target: RouteTarget, signature: Signature, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        checker = self._checkers.get(target.version_id)
        if checker is None:
            checker = self._checkers[target.version_id] = InputChecker(signature)
        try:
            return checker(inputs)
        except InputError as exc:
            raise errors.ValidationFailed(str(exc)) from None

    async def _predict(
        self,
        route: Route,
        target: RouteTarget,
        tenant_id: str,
        inputs: dict[str, np.ndarray],
        request_id: str,
    ) -> dict[str, np.ndarray]:
        waiting = self._in_flight.get(route.deployment_id, 0)
        if waiting >= route.max_queued:  # a bounded queue per deployment, never a long wait
            raise errors.Overloaded("the deployment's queue is full")
        if self._tenant_in_flight.get(tenant_id, 0) >= self._config.tenant_max_in_flight:
            # one tenant cannot hold every slot of this replica
            raise errors.Overloaded("too many of your requests are in flight")
        rows = len(next(iter(inputs.values()))) if inputs else 0
        await self._identity.quotas.charge(
            tenant_id,
            Limit.MONTHLY_PREDICTIONS,
            max(rows, 1),
            source_id=request_id,
            dimensions={"deployment": route.name, "version": target.version},
            hot=True,
        )
        self._in_flight[route.deployment_id] = self._in_flight.get(route.deployment_id, 0) + 1
        self._tenant_in_flight[tenant_id] = self._tenant_in_flight.get(tenant_id, 0) + 1
        try:
            return await self._call(route, target, tenant_id, inputs)
        finally:
            self._in_flight[route.deployment_id] -= 1
            self._tenant_in_flight[tenant_id] -= 1

    async def _call(
        self, route: Route, target: RouteTarget, tenant_id: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        args = (
            tenant_id,
            target.version_id,
            inputs,
            route.max_batch_size,
            route.batch_wait_ms,
            route.timeout_s,
        )
        try:
            if route.app is None:  # shared: in this replica's worker for the tenant
                return await self._models.predict(*args)
            return await self._remote(route.app, args)
        except (BackPressureError, workers.PoolFull):
            raise errors.Overloaded("the deployment's queue is full") from None
        except InputError as exc:
            raise errors.ValidationFailed(str(exc)) from None
        except WrongTenant:
            raise errors.NotFound("no such deployment") from None
        except workers.PredictionTimeout as exc:
            raise errors.PredictionTimeout(str(exc)) from None
        except workers.WorkerError as exc:
            raise _worker_problem(exc) from None
        except workers.WorkerFailed as exc:
            if exc.limit == "memory":
                raise errors.MemoryLimitExceeded(str(exc)) from None
            raise errors.WorkerFailed(str(exc)) from None
        except SandboxUnavailable as exc:
            raise errors.SandboxUnavailable(str(exc)) from None

    async def _remote(self, app: str, args: tuple[Any, ...]) -> dict[str, np.ndarray]:
        """A dedicated deployment's replica predicts. A prediction has no side effects,
        so one that died with its replica (killed, node lost) is tried once more on
        another replica rather than failed."""
        try:
            result: dict[str, np.ndarray] = await self._handle_of(app).predict.remote(*args)
        except (RayActorError, ReplicaUnavailableError):
            log.warning("a replica of %s went away mid-request; retrying once", app)
            result = await self._handle_of(app).predict.remote(*args)
        return result

    def _handle_of(self, app: str) -> Any:
        handle = self._handles.get(app)
        if handle is None:
            handle = self._handles[app] = serve.get_app_handle(app)
        return handle

    def _describe(
        self,
        route: Route,
        target: RouteTarget,
        ready_only: bool,
        headers: dict[str, str],
        request: Request,
    ) -> Response:
        if ready_only:
            return Response(status_code=200, headers=headers)
        signature = self._signature(target)
        versions = [str(t.version) for t in route.targets]
        body = protocol.model_metadata(route.name, versions, signature)
        return Response(json.dumps(body), headers={**headers, "content-type": "application/json"})


def _worker_problem(exc: workers.WorkerError) -> errors.AtriumError:
    if exc.kind == "input":
        return errors.ValidationFailed(exc.message)
    if exc.kind == "memory":
        return errors.MemoryLimitExceeded(exc.message)
    return errors.PredictionFailed(f"the model failed on this request: {exc.message}")


def _pin(request: Request) -> str | None:
    return request.query_params.get("version") or request.headers.get("x-atrium-model-version")


def _target(route: Route, pinned: str | None) -> RouteTarget:
    if pinned is not None:
        for target in route.targets:
            if str(target.version) == pinned or target.alias == pinned:
                return target
        served = ", ".join(str(t.version) for t in route.targets)
        raise errors.NotFound(f"version {pinned} is not served here (serving {served})")
    live = [t for t in route.targets if t.weight > 0]
    if not live:
        raise errors.NotReady("the deployment serves no version right now")
    if len(live) == 1:
        return live[0]
    return random.choices(live, weights=[t.weight for t in live])[0]  # noqa: S311


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
