"""The model client: where a prediction runs, and what its failures mean to a caller.

A shared deployment's version runs in this replica's sandboxed worker for the tenant
(``ModelCache``); a dedicated one in its own application's replicas (a Serve handle),
each of which owns its worker. Every failure of the tenant zone becomes the error the
caller sees, naming the limit that was hit; nothing else about the worker leaks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError

from cluster.sandbox import SandboxUnavailable
from control_plane import errors
from serve_apps.gateway.config import Route, RouteTarget
from serve_apps.runtime import workers
from serve_apps.runtime.cache import WrongTenant
from serve_apps.runtime.signature import InputError

log = logging.getLogger("atrium.gateway")


class Models(Protocol):
    """This replica's runtime for shared deployments (a ``ModelCache``)."""

    def holds(self, version_id: str) -> bool: ...

    async def predict(
        self,
        tenant_id: str,
        version_id: str,
        inputs: dict[str, np.ndarray],
        max_batch_size: int,
        wait_ms: float,
        timeout_s: float = 30.0,
    ) -> dict[str, np.ndarray]: ...


class ModelClient:
    def __init__(self, models: Models, handle_of: Callable[[str], Any]) -> None:
        self._models = models
        self._handle_of = handle_of

    def holds(self, version_id: str) -> bool:
        return self._models.holds(version_id)

    async def predict(
        self, route: Route, target: RouteTarget, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        args = (
            route.tenant_id,
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
        except Exception as exc:
            raise problem_of(exc) from None

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


def problem_of(exc: Exception) -> Exception:
    """The caller's error for a failure of the model's side (others pass unchanged)."""
    match exc:
        case BackPressureError() | workers.PoolFull():
            return errors.Overloaded("the deployment's queue is full")
        case InputError():
            return errors.ValidationFailed(str(exc))
        case WrongTenant():
            return errors.NotFound("no such deployment")
        case workers.PredictionTimeout():
            return errors.PredictionTimeout(str(exc))
        case workers.WorkerError():
            return _worker_problem(exc)
        case workers.WorkerFailed() if exc.limit == "memory":
            return errors.MemoryLimitExceeded(str(exc))
        case workers.WorkerFailed():
            return errors.WorkerFailed(str(exc))
        case SandboxUnavailable():
            return errors.SandboxUnavailable(str(exc))
    return exc


def _worker_problem(exc: workers.WorkerError) -> errors.AtriumError:
    if exc.kind == "input":
        return errors.ValidationFailed(exc.message)
    if exc.kind == "memory":
        return errors.MemoryLimitExceeded(exc.message)
    return errors.PredictionFailed(f"the model failed on this request: {exc.message}")
