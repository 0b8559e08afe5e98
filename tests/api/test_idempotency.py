"""`POST /deployments` honours `Idempotency-Key`: a retry gets the first answer again and
never a second deployment, on SQLite and Postgres. (run_once's finer rules are in
tests/unit/test_idempotency.py.)"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import text

from control_plane.deployment import service
from tests.api.registry import new_model, problem, upload
from tests.api.world import Api, World, run_async
from tests.models import onnx

KEY = "retry-me-7f3c"
REPLAYED = "Idempotent-Replayed"


@pytest.fixture
def model_id(world: World, tmp_path: Path) -> str:
    """acme's model, whose version 1 is ready to serve."""
    token = world.acme["developer"].token
    model = new_model(world.api, token)
    assert upload(world.api, token, model["id"], onnx(tmp_path)[0], "onnx", wait=True).is_success
    found: str = model["id"]
    return found


def _deploy(
    world: World, model_id: str, name: str = "churn", key: str | None = KEY, **extra: Any
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    body = {"name": name, "model_id": model_id, "version": 1, **extra}
    token = world.acme["developer"].token
    return world.api.post("/api/v1/deployments", token, json=body, headers=headers)


def _names(world: World) -> list[str]:
    items = world.api.get("/api/v1/deployments", world.acme["owner"].token).json()["items"]
    return sorted(d["name"] for d in items)


def _sql(api: Api, statement: str, **params: Any) -> list[Any]:
    async def run() -> list[Any]:
        async with api.services.db.engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    rows: list[Any] = run_async(api, run)
    return rows


def _claims(api: Api, key: str = KEY) -> list[Any]:
    return _sql(api, "SELECT state FROM idempotency_keys WHERE key = :key", key=key)


def test_a_retry_gets_the_first_answer_and_no_second_deployment(
    world: World, model_id: str
) -> None:
    first = _deploy(world, model_id)
    again = _deploy(world, model_id)
    assert first.status_code == again.status_code == 202, again.text
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert again.headers[REPLAYED] == "true"
    assert REPLAYED not in first.headers
    assert _names(world) == ["churn"]
    assert _claims(world.api) == [("completed",)]


def test_the_same_key_with_another_body_is_refused(world: World, model_id: str) -> None:
    assert _deploy(world, model_id).status_code == 202
    other = _deploy(world, model_id, name="churn-2")
    body = problem(other, 422, "idempotency_conflict")
    assert "Idempotency-Key" in body["detail"]
    assert _names(world) == ["churn"]


def test_parallel_retries_create_one_deployment(
    world: World, model_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = service.create

    async def slow_create(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)  # the other request arrives while this one runs
        return await create(*args, **kwargs)

    monkeypatch.setattr(service, "create", slow_create)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: _deploy(world, model_id), range(2)))
    firsts = [a for a in answers if a.status_code == 202 and REPLAYED not in a.headers]
    assert len(firsts) == 1, [a.text for a in answers]
    (other,) = (a for a in answers if a is not firsts[0])
    if other.status_code == 409:
        assert other.json()["code"] == "idempotency_in_flight"
        assert other.headers["Retry-After"] == "1"
    else:
        assert (other.status_code, other.headers[REPLAYED]) == (202, "true")
        assert other.json()["id"] == firsts[0].json()["id"]
    assert _names(world) == ["churn"]


def test_keys_belong_to_their_tenant(world: World, model_id: str) -> None:
    assert _deploy(world, model_id).status_code == 202
    assert _deploy(world, model_id).headers[REPLAYED] == "true"
    body = {"name": "churn", "model_id": model_id, "version": 1}
    headers = {"Idempotency-Key": KEY}
    token = world.globex["owner"].token
    for _ in range(2):  # globex's own request runs (acme's model is unknown to it)
        foreign = world.api.post("/api/v1/deployments", token, json=body, headers=headers)
        assert REPLAYED not in foreign.headers
        problem(foreign, 404)


def test_an_expired_key_runs_again_and_is_cleared(world: World, model_id: str) -> None:
    first = _deploy(world, model_id).json()
    assert _deploy(world, model_id).json()["id"] == first["id"]
    owner = world.acme["owner"].token
    assert world.api.delete(f"/api/v1/deployments/{first['id']}", owner).status_code == 204
    past = datetime.now(UTC) - timedelta(seconds=1)
    _sql(world.api, "UPDATE idempotency_keys SET expires_at = :past", past=past)
    assert _deploy(world, model_id, name="other", key="another-key").status_code == 202
    assert _claims(world.api) == []  # a later claim deleted the expired key
    again = _deploy(world, model_id)
    assert again.status_code == 202 and REPLAYED not in again.headers
    assert again.json()["id"] != first["id"]
    assert _names(world) == ["churn", "other"]


@pytest.mark.parametrize("blocked_by", ["name", "plan"])
def test_a_failed_create_frees_its_key_for_the_retry(
    world: World, model_id: str, blocked_by: str
) -> None:
    """A refused create is not kept: the key is free at once, and the retry (the cause
    removed) runs and is kept."""
    blockers = ["churn"] if blocked_by == "name" else ["one", "two"]
    if blocked_by == "plan":  # the free plan allows 2 deployments
        path = f"/api/v1/tenants/{world.acme.id}"
        world.api.call("PUT", f"{path}/plan", world.admin_token, json={"plan": "free"})
        limits = {"limits": {"api_rps": None}}
        world.api.call("PUT", f"{path}/limits", world.admin_token, json=limits)
    ids = [_deploy(world, model_id, name=n, key=None).json()["id"] for n in blockers]
    refused = _deploy(world, model_id)
    assert refused.status_code == (409 if blocked_by == "name" else 403), refused.text
    assert _claims(world.api) == []
    owner = world.acme["owner"].token
    assert world.api.delete(f"/api/v1/deployments/{ids[0]}", owner).status_code == 204
    created = _deploy(world, model_id)
    assert created.status_code == 202, created.text
    assert _deploy(world, model_id).headers[REPLAYED] == "true"
    assert "churn" in _names(world)


def test_without_a_key_creates_behave_as_before(world: World, model_id: str) -> None:
    first = _deploy(world, model_id, key=None)
    assert first.status_code == 202 and REPLAYED not in first.headers
    problem(_deploy(world, model_id, key=None), 409, "conflict")
    assert _sql(world.api, "SELECT id FROM idempotency_keys") == []


@pytest.mark.parametrize("key", ["k" * 256, ""])
def test_a_bad_key_is_refused_naming_the_header(world: World, model_id: str, key: str) -> None:
    body = problem(_deploy(world, model_id, key=key), 422, "validation_error")
    assert "Idempotency-Key" in body["detail"]
    assert body["field"] == "Idempotency-Key"
    assert _names(world) == []
    assert _deploy(world, model_id, key="k" * 255).status_code == 202
