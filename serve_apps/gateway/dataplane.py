"""The protocol-agnostic half of inference (KServe's ``DataPlane``): find the caller's
deployment and the version to serve, check the tensors against its signature, hold
the per-deployment queue and the per-tenant share of this replica, meter the rows,
and ask the model client for a prediction. Speaks numpy arrays, never HTTP.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from control_plane import errors
from control_plane.plan.catalog import Limit
from serve_apps.gateway.client import ModelClient
from serve_apps.gateway.config import Route, RouteTarget, RoutingTable
from serve_apps.runtime.signature import InputChecker, InputError, Signature


class Charges(Protocol):
    async def charge(
        self,
        tenant_id: str,
        limit: Limit,
        amount: int,
        *,
        source_id: str,
        dimensions: dict[str, Any] | None = None,
        hot: bool = False,
    ) -> Any: ...


def rows_of(inputs: Mapping[str, np.ndarray]) -> int:
    """Predictions metered for a request: rows of the batch (first) dimension, the
    largest over every input; a scalar input is one row, and a request at least one."""
    return max([1, *(int(a.shape[0]) if a.ndim else 1 for a in inputs.values())])


class DataPlane:
    def __init__(self, client: ModelClient, quotas: Charges, *, tenant_max_in_flight: int) -> None:
        self._client = client
        self._quotas = quotas
        self._tenant_max = tenant_max_in_flight
        self._table = RoutingTable()
        self._in_flight: dict[str, int] = {}  # per deployment
        self._tenant_in_flight: dict[str, int] = {}
        self._checkers: dict[str, InputChecker] = {}
        self._signatures: dict[str, Signature] = {}

    @property
    def auth_epoch(self) -> int:
        return self._table.auth_epoch

    def reconfigure(self, table: RoutingTable) -> None:
        self._table = table
        self._checkers.clear()
        self._signatures.clear()

    def resolve(self, tenant_id: str, name: str, pinned: str | None) -> tuple[Route, RouteTarget]:
        """The caller's deployment by name (only its own tenant's) and the version to
        serve: the pinned one, else one drawn by the canary weights."""
        route = self._table.routes.get(RoutingTable.key(tenant_id, name))
        if route is None:
            raise errors.NotFound(f"no deployment named '{name}'")
        return route, _target(route, pinned)

    def signature(self, target: RouteTarget) -> Signature:
        signature = self._signatures.get(target.version_id)
        if signature is None:
            signature = self._signatures[target.version_id] = Signature.model_validate(
                target.signature
            )
        return signature

    def cached(self, route: Route, target: RouteTarget) -> bool | None:
        """Whether a shared deployment's version was already loaded (None: dedicated)."""
        return None if route.app is not None else self._client.holds(target.version_id)

    async def infer(
        self,
        route: Route,
        target: RouteTarget,
        inputs: dict[str, np.ndarray],
        *,
        request_id: str,
    ) -> dict[str, np.ndarray]:
        checked = self._check(target, inputs)
        self._admit(route)
        await self._quotas.charge(
            route.tenant_id,
            Limit.MONTHLY_PREDICTIONS,
            rows_of(checked),
            source_id=request_id,
            dimensions={"deployment": route.name, "version": target.version},
            hot=True,
        )
        self._in_flight[route.deployment_id] = self._in_flight.get(route.deployment_id, 0) + 1
        self._tenant_in_flight[route.tenant_id] = self._tenant_in_flight.get(route.tenant_id, 0) + 1
        try:
            return await self._client.predict(route, target, checked)
        finally:
            self._in_flight[route.deployment_id] -= 1
            self._tenant_in_flight[route.tenant_id] -= 1

    def _admit(self, route: Route) -> None:
        if self._in_flight.get(route.deployment_id, 0) >= route.max_queued:
            raise errors.Overloaded("the deployment's queue is full")  # bounded, never long
        if self._tenant_in_flight.get(route.tenant_id, 0) >= self._tenant_max:
            # one tenant cannot hold every slot of this replica
            raise errors.Overloaded("too many of your requests are in flight")

    def _check(self, target: RouteTarget, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        checker = self._checkers.get(target.version_id)
        if checker is None:
            checker = self._checkers[target.version_id] = InputChecker(self.signature(target))
        try:
            return checker(inputs)
        except InputError as exc:
            raise errors.ValidationFailed(str(exc)) from None


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
