from __future__ import annotations

import uuid
from typing import Any

import pytest

from control_plane.errors import QuotaExceeded
from control_plane.plan.catalog import Limit
from tests.api.world import Api, World, run_async


def _quotas(world: World, role: str = "owner") -> dict[str, dict[str, Any]]:
    body = world.api.get("/api/v1/quotas", world.acme[role].token).json()
    return {q["name"]: q for q in body["items"]}


def _charge(api: Api, tenant_id: str, limit: Limit, amount: int, source: str | None = None) -> Any:
    async def run() -> Any:
        return await api.services.quotas.charge(
            tenant_id, limit, amount, source_id=source or uuid.uuid4().hex
        )

    return run_async(api, run)


def test_plans_are_listed_with_prices_and_limits(world: World) -> None:
    body = world.api.get("/api/v1/plans", world.acme["viewer"].token).json()
    plans = {p["name"]: p for p in body["items"]}
    assert {"free", "pro", "enterprise"} <= plans.keys()
    assert plans["pro"]["price_cents"] > 0
    assert plans["free"]["limits"]["monthly_predictions"] == 10000
    assert plans["enterprise"]["limits"]["monthly_predictions"] is None


def test_admin_puts_a_tenant_on_a_plan_and_limits_follow_at_once(world: World) -> None:
    api = world.api
    assert _quotas(world)["monthly_predictions"]["limit"] == 10000
    changed = api.call(
        "PUT", f"/api/v1/tenants/{world.acme.id}/plan", world.admin_token, json={"plan": "pro"}
    )
    assert changed.status_code == 200 and changed.json()["plan"] == "pro"
    quotas = _quotas(world)
    assert quotas["monthly_predictions"]["limit"] == 5_000_000
    assert quotas["max_concurrent_jobs"]["limit"] == 10
    events = api.get("/api/v1/events", world.acme["owner"].token).json()["items"]
    assert {"type": "tenant.plan_changed", "data": {"from": "free", "to": "pro"}}.items() <= next(
        e for e in events if e["type"] == "tenant.plan_changed"
    ).items()


def test_plan_changes_are_for_platform_admins_and_known_plans(world: World) -> None:
    api = world.api
    path = f"/api/v1/tenants/{world.acme.id}/plan"
    assert api.call("PUT", path, world.acme["owner"].token, json={"plan": "pro"}).status_code == 403
    unknown = api.call("PUT", path, world.admin_token, json={"plan": "platinum"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "plan"
    bad_create = api.post(
        "/api/v1/tenants", world.admin_token, json={"name": "X", "slug": "xyz", "plan": "gold"}
    )
    assert bad_create.status_code == 422


def test_overrides_replace_single_limits(world: World) -> None:
    api = world.api
    path = f"/api/v1/tenants/{world.acme.id}/limits"
    body = {"limits": {"monthly_predictions": 50, "max_deployments": None}}
    set_ = api.call("PUT", path, world.admin_token, json=body)
    assert set_.status_code == 200
    assert set_.json()["limits"]["monthly_predictions"] == 50
    assert set_.json()["limits"]["max_deployments"] is None
    assert api.get(path, world.acme["viewer"].token).json()["limits"]["monthly_predictions"] == 50
    assert _quotas(world)["monthly_predictions"]["limit"] == 50
    bad = api.call("PUT", path, world.admin_token, json={"limits": {"bananas": 1}})
    assert bad.status_code == 422


def test_counted_quota_charges_then_refuses_with_a_clean_429(world: World) -> None:
    api = world.api
    api.call(
        "PUT",
        f"/api/v1/tenants/{world.acme.id}/limits",
        world.admin_token,
        json={"limits": {"monthly_predictions": 10, "api_rps": None}},
    )
    assert _charge(api, world.acme.id, Limit.MONTHLY_PREDICTIONS, 8).used == 8
    with pytest.raises(QuotaExceeded) as refused:
        _charge(api, world.acme.id, Limit.MONTHLY_PREDICTIONS, 3)
    assert refused.value.status == 429 and refused.value.code == "quota_exceeded"
    assert int(refused.value.headers["Retry-After"]) > 0
    assert refused.value.headers["RateLimit-Remaining"] == "2"
    assert _quotas(world)["monthly_predictions"]["used"] == 8
    events = api.get("/api/v1/events", world.acme["owner"].token, params={"limit": 200}).json()
    thresholds = [e["data"] for e in events["items"] if e["type"] == "quota.threshold"]
    assert [t["percent"] for t in thresholds] == [80, 100]


def test_a_retried_charge_counts_once(world: World) -> None:
    api = world.api
    _charge(api, world.acme.id, Limit.MONTHLY_PREDICTIONS, 5, source="req-42")
    _charge(api, world.acme.id, Limit.MONTHLY_PREDICTIONS, 5, source="req-42")
    assert _quotas(world)["monthly_predictions"]["used"] == 5


def test_usage_survives_a_restart(make_client: Any) -> None:
    from tests.api.world import build_world

    api = make_client()
    world = build_world(api)
    _charge(api, world.acme.id, Limit.MONTHLY_CPU_HOURS, 1800)  # half a CPU-hour
    run_async(api, api.services.usage.flush)
    restarted = make_client()  # a new process: in-process counters start empty
    body = restarted.get("/api/v1/quotas", world.acme["owner"].token).json()
    used = {q["name"]: q["used"] for q in body["items"]}
    assert used["monthly_cpu_hours"] == 0.5


def test_concurrency_quota_holds_and_releases(world: World) -> None:
    api = world.api
    quotas = api.services.quotas

    async def run() -> None:
        await quotas.hold(world.acme.id, Limit.MAX_CONCURRENT_JOBS, "job-1")  # free: 1 job
        with pytest.raises(QuotaExceeded):
            await quotas.hold(world.acme.id, Limit.MAX_CONCURRENT_JOBS, "job-2")
        await quotas.release(world.acme.id, Limit.MAX_CONCURRENT_JOBS, "job-1")
        await quotas.hold(world.acme.id, Limit.MAX_CONCURRENT_JOBS, "job-2")

    run_async(api, run)
    assert _quotas(world)["max_concurrent_jobs"]["used"] == 1


def test_api_calls_are_rate_limited_per_tenant(world: World) -> None:
    api = world.api
    api.call(
        "PUT",
        f"/api/v1/tenants/{world.acme.id}/limits",
        world.admin_token,
        json={"limits": {"api_rps": 2}},
    )
    token = world.acme["viewer"].token
    responses = [api.get("/api/v1/auth/me", token) for _ in range(6)]
    statuses = [r.status_code for r in responses]
    assert statuses[:2] == [200, 200] and 429 in statuses
    ok, limited = responses[0], next(r for r in responses if r.status_code == 429)
    assert ok.headers["ratelimit-limit"] == "2"
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    # another tenant is not slowed down by acme's burst
    assert api.get("/api/v1/auth/me", world.globex["owner"].token).status_code == 200


def test_a_key_can_carry_its_own_rate(world: World) -> None:
    api = world.api
    key = api.new_key(world.acme["developer"].token, ["inference"], rate_limit_rps=1)["key"]
    statuses = [api.get("/api/v1/auth/me", key).status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses
    assert api.get("/api/v1/auth/me", world.acme["developer"].token).status_code == 200
