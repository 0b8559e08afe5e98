"""The gateway's admission, data plane and model client below a live cluster: fake
credentials, quotas and workers, real routing, signature checks, queues, metering and
error mapping."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from control_plane import errors
from control_plane.auth.admission import Admission
from control_plane.auth.permissions import Action, Role
from control_plane.auth.principal import Principal
from control_plane.plan.catalog import Limit
from serve_apps.gateway.client import ModelClient, problem_of
from serve_apps.gateway.config import RoutingTable
from serve_apps.gateway.dataplane import DataPlane, rows_of
from serve_apps.runtime import workers
from serve_apps.runtime.cache import WrongTenant

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SIGNATURE = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 2]}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": [-1]}],
}


def route(
    tenant: str, name: str, *, app: str | None = None, max_queued: int = 10
) -> dict[str, Any]:
    return {
        "deployment_id": f"dep-{tenant}-{name}",
        "tenant_id": tenant,
        "name": name,
        "app": app,
        "max_queued": max_queued,
        "targets": [
            {
                "version_id": "v1",
                "version": 1,
                "weight": 90,
                "alias": "champion",
                "signature": SIGNATURE,
            },
            {"version_id": "v2", "version": 2, "weight": 10, "signature": SIGNATURE},
        ],
        "max_batch_size": 8,
        "batch_wait_ms": 1,
        "timeout_s": 1.0,
    }


def table(*routes: dict[str, Any]) -> RoutingTable:
    return RoutingTable.model_validate(
        {"routes": {f"{r['tenant_id']}/{r['name']}": r for r in routes}}
    )


class FakeModels:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    def holds(self, version_id: str) -> bool:
        return bool(self.calls)

    async def predict(
        self, tenant_id: str, version_id: str, inputs: dict[str, np.ndarray], *args: Any
    ) -> dict[str, np.ndarray]:
        self.calls.append((tenant_id, version_id))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {"y": inputs["x"].sum(axis=1)}


class FakeQuotas:
    def __init__(self) -> None:
        self.charged: list[tuple[str, int]] = []
        self.rated: list[str] = []

    async def charge(self, tenant_id: str, limit: Limit, amount: int, **_: Any) -> None:
        assert limit is Limit.MONTHLY_PREDICTIONS
        self.charged.append((tenant_id, amount))

    async def rate(self, tenant_id: str, limit: Limit, **_: Any) -> dict[str, str]:
        self.rated.append(f"{tenant_id}:{limit}")
        return {"RateLimit-Remaining": "9"}


def plane(models: FakeModels, quotas: FakeQuotas, *, tenant_max: int = 64) -> DataPlane:
    dp = DataPlane(ModelClient(models, lambda app: None), quotas, tenant_max_in_flight=tenant_max)
    dp.reconfigure(table(route("t1", "m"), route("t2", "m", max_queued=2)))
    return dp


def x(rows: int) -> dict[str, np.ndarray]:
    return {"x": np.ones((rows, 2), dtype=np.float32)}


async def test_a_tenant_resolves_only_its_own_deployments() -> None:
    dp = plane(FakeModels(), FakeQuotas())
    found, _ = dp.resolve("t1", "m", None)
    assert found.tenant_id == "t1"
    with pytest.raises(errors.NotFound):
        dp.resolve("t3", "m", None)


async def test_pins_by_version_or_alias_and_names_what_is_served() -> None:
    dp = plane(FakeModels(), FakeQuotas())
    assert dp.resolve("t1", "m", "2")[1].version_id == "v2"
    assert dp.resolve("t1", "m", "champion")[1].version_id == "v1"
    with pytest.raises(errors.NotFound, match="serving 1, 2"):
        dp.resolve("t1", "m", "7")


async def test_infer_checks_the_signature_before_charging() -> None:
    models, quotas = FakeModels(), FakeQuotas()
    dp = plane(models, quotas)
    r, t = dp.resolve("t1", "m", "1")
    with pytest.raises(errors.ValidationFailed, match="'x'"):
        await dp.infer(r, t, {"x": np.ones((1, 3), dtype=np.float32)}, request_id="a")
    assert quotas.charged == [] and models.calls == []
    out = await dp.infer(r, t, x(3), request_id="b")
    assert out["y"].tolist() == [2.0, 2.0, 2.0]
    assert quotas.charged == [("t1", 3)]


def test_rows_are_the_batch_dimension_of_every_input() -> None:
    assert rows_of({"a": np.ones((5, 2)), "b": np.ones((7,))}) == 7
    assert rows_of({"a": np.float32(1.0) * np.ones(())}) == 1
    assert rows_of({"a": np.ones((0, 2))}) == 1
    assert rows_of({}) == 1


async def test_a_full_queue_answers_503_without_charging() -> None:
    models, quotas = FakeModels(), FakeQuotas()
    models.gate = asyncio.Event()
    dp = plane(models, quotas)
    r, t = dp.resolve("t2", "m", "1")  # max_queued 2
    held = [asyncio.create_task(dp.infer(r, t, x(1), request_id=str(i))) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(errors.Overloaded, match="queue is full"):
        await dp.infer(r, t, x(1), request_id="late")
    assert len(quotas.charged) == 2
    models.gate.set()
    await asyncio.gather(*held)


async def test_one_tenant_cannot_hold_every_slot() -> None:
    models, quotas = FakeModels(), FakeQuotas()
    models.gate = asyncio.Event()
    dp = plane(models, quotas, tenant_max=3)
    r, t = dp.resolve("t1", "m", "1")
    held = [asyncio.create_task(dp.infer(r, t, x(1), request_id=str(i))) for i in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(errors.Overloaded, match="your requests"):
        await dp.infer(r, t, x(1), request_id="more")
    models.gate.set()
    await asyncio.gather(*held)
    await dp.infer(r, t, x(1), request_id="after")  # slots come back


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (workers.PredictionTimeout("past 1 s"), errors.PredictionTimeout),
        (workers.WorkerFailed("killed", limit="memory"), errors.MemoryLimitExceeded),
        (workers.WorkerFailed("died"), errors.WorkerFailed),
        (workers.WorkerError("input", "bad x"), errors.ValidationFailed),
        (workers.WorkerError("model", "boom"), errors.PredictionFailed),
        (workers.PoolFull("full"), errors.Overloaded),
        (WrongTenant("v1"), errors.NotFound),
    ],
)
async def test_worker_failures_become_the_callers_problem(
    failure: Exception, expected: type[errors.AtriumError]
) -> None:
    models = FakeModels()
    models.fail = failure
    dp = plane(models, FakeQuotas())
    r, t = dp.resolve("t1", "m", "1")
    with pytest.raises(expected):
        await dp.infer(r, t, x(1), request_id="a")


def test_unknown_failures_pass_unchanged() -> None:
    boom = RuntimeError("ours")
    assert problem_of(boom) is boom


class FakeAuthenticator:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def authenticate(self, authorization: str | None) -> Principal:
        if authorization != "Bearer good":
            raise errors.Unauthorized("no")
        return self.principal


def user(role: Role, tenant: str | None = "t1") -> Principal:
    return Principal.for_user(
        user_id="u", tenant_id=tenant, role=role, email="u@x.io", mfa_enabled=False
    )


async def test_admission_takes_the_rate_then_requires_the_action() -> None:
    quotas = FakeQuotas()
    admission = Admission(FakeAuthenticator(user(Role.VIEWER)), quotas)
    admitted = await admission.admit("Bearer good", Action.INFERENCE, rate=Limit.INFERENCE_RPS)
    assert admitted.headers == {"RateLimit-Remaining": "9"}
    assert quotas.rated == ["t1:inference_rps"]
    with pytest.raises(errors.Forbidden, match="models:write"):
        await admission.admit("Bearer good", Action.MODELS_WRITE, rate=Limit.API_RPS)
    assert quotas.rated[-1] == "t1:api_rps"  # probing permissions is rate-limited too
    with pytest.raises(errors.Unauthorized):
        await admission.admit("Bearer forged", Action.INFERENCE, rate=Limit.INFERENCE_RPS)


async def test_admission_of_tenant_only_actions() -> None:
    admin = user(Role.PLATFORM_ADMIN, tenant=None)
    admission = Admission(FakeAuthenticator(admin), FakeQuotas())
    with pytest.raises(errors.Forbidden, match="belongs to tenants"):
        await admission.admit(
            "Bearer good", Action.INFERENCE, rate=Limit.INFERENCE_RPS, tenants_only=True
        )
    key = user(Role.DEVELOPER).with_key(api_key_id="k", scopes=["models:read"], expires_at=None)
    admission = Admission(FakeAuthenticator(key), FakeQuotas())
    with pytest.raises(errors.Forbidden, match="'inference'"):
        await admission.admit(
            "Bearer good", Action.INFERENCE, rate=Limit.INFERENCE_RPS, tenants_only=True
        )
