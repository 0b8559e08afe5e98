"""Counted quotas hold under parallel requests through the real app: uploads cannot
together pass ``storage_gb``, creates cannot together pass ``max_deployments``, with the
in-process quota backend and with Redis, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.api.registry import blobs, new_model, problem, upload
from tests.api.world import Api, World, build_world, run_async
from tests.models import onnx

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
ROWS = 1500


@pytest.fixture(params=["local", "redis"])
def world(request: pytest.FixtureRequest, make_client: Callable[..., Api]) -> World:
    """acme and globex on an app whose quota backend is in-process or Redis."""
    if request.param == "local":
        return build_world(make_client())
    redis_url = request.getfixturevalue("redis_url")
    namespace = f"t{uuid.uuid4().hex[:12]}"
    return build_world(make_client(redis_url=redis_url, redis_namespace=namespace))


def _parallel(api: Api, calls: list[Call]) -> list[httpx.Response]:
    """Send every call at once to the app, on the app's own event loop."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return list(await asyncio.gather(*(call(c) for call in calls)))

    responses: list[httpx.Response] = run_async(api, run)
    return responses


def _limit(world: World, **limits: Any) -> None:
    path = f"/api/v1/tenants/{world.acme.id}/limits"
    body = {"limits": {"api_rps": None, **limits}}
    assert world.api.call("PUT", path, world.admin_token, json=body).status_code == 200


def _quota(world: World, name: str) -> Any:
    items = world.api.get("/api/v1/quotas", world.acme["owner"].token).json()["items"]
    return next(q["used"] for q in items if q["name"] == name)


def _csv(n: int) -> bytes:
    """A table of the same size for every n, with content of its own."""
    return b"id,group\n" + b"".join(b"%06d,%d\n" % (i, n % 10) for i in range(ROWS))


def _dataset_upload(token: str, n: int) -> Call:
    def call(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.post(
            "/api/v1/datasets",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": (f"t{n}.csv", _csv(n))},
            data={"name": f"table-{n}"},
        )

    return call


def _padded_onnx(directory: Path) -> bytes:
    """A valid ONNX model of about 20 kB (the form's own bytes are small beside it)."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx(directory)[0]))
    model.doc_string = "padding " * 2500
    return bytes(model.SerializeToString())


def _statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


def test_parallel_dataset_uploads_stop_at_the_storage_quota(world: World) -> None:
    api, size = world.api, len(_csv(0))
    _limit(world, storage_gb=2.5 * size / 1e9)  # room for two
    token = world.acme["developer"].token
    responses = _parallel(api, [_dataset_upload(token, n) for n in range(6)])
    assert _statuses(responses) == [201, 201, 413, 413, 413, 413], [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 413):
        assert "storage_gb" in problem(refused, 413, "storage_quota_exceeded")["detail"]
    assert _quota(world, "storage_gb") == pytest.approx(2 * size / 1e9)
    assert len(blobs(api, world.acme.id)) == 2  # nothing left of the refused ones
    assert _reserved(api, world.acme.id) == 0
    # what was refused is free again: delete one and the next upload fits
    first = next(r.json() for r in responses if r.status_code == 201)
    token = world.acme["owner"].token
    assert api.delete(f"/api/v1/datasets/{first['id']}", token).status_code == 204
    again = _parallel(api, [_dataset_upload(world.acme["developer"].token, n) for n in (7, 8)])
    assert _statuses(again) == [201, 413]
    assert _quota(world, "storage_gb") == pytest.approx(2 * size / 1e9)


def test_parallel_model_uploads_stop_at_the_storage_quota(world: World, tmp_path: Path) -> None:
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token)
    content = _padded_onnx(tmp_path)
    _limit(world, storage_gb=3.5 * len(content) / 1e9)  # room for three

    def version(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        return client.post(
            f"/api/v1/models/{model['id']}/versions",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("model.onnx", content)},
            data={"format": "onnx"},
        )

    responses = _parallel(api, [version] * 7)
    assert _statuses(responses) == [201] * 3 + [413] * 4, [r.text for r in responses]
    assert _quota(world, "storage_gb") == pytest.approx(3 * len(content) / 1e9)
    assert _reserved(api, world.acme.id) == 0
    # and after these failures, one more upload is still refused: the usage is exact
    problem(upload(api, token, model["id"], content, "onnx"), 413, "storage_quota_exceeded")


def test_a_failed_upload_gives_its_reservation_back(world: World) -> None:
    api, token = world.api, world.acme["developer"].token
    size = len(_csv(0))
    _limit(world, storage_gb=1.5 * size / 1e9)
    broken = b"id,group\n" + b"\xff\xfe not a table \x00" * (size // 20)
    response = api.post(
        "/api/v1/datasets", token, files={"file": ("x.csv", broken)}, data={"name": "bad"}
    )
    problem(response, 422)  # stored, read through, refused: rolled back
    assert _reserved(api, world.acme.id) == 0
    ok = api.post(
        "/api/v1/datasets", token, files={"file": ("t.csv", _csv(1))}, data={"name": "good"}
    )
    assert ok.status_code == 201, ok.text


def _reserved(api: Api, tenant_id: str) -> int:
    async def read() -> int:
        return int(await api.services.quotas.backend.reserved(f"{tenant_id}:storage_gb:held"))

    reserved: int = run_async(api, read)
    return reserved


@pytest.fixture
def served(world: World, tmp_path: Path) -> dict[str, Any]:
    """acme's model with a ready version 1."""
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token)
    assert upload(api, token, model["id"], onnx(tmp_path)[0], "onnx", wait=True).status_code == 201
    return model


def _create(token: str, **body: Any) -> Call:
    def call(client: httpx.AsyncClient) -> Awaitable[httpx.Response]:
        headers = {"Authorization": f"Bearer {token}"}
        return client.post("/api/v1/deployments", headers=headers, json=body)

    return call


def test_parallel_creates_stop_at_max_deployments(world: World, served: dict[str, Any]) -> None:
    _limit(world, max_deployments=3)
    token = world.acme["developer"].token
    calls = [_create(token, name=f"d{n}", model_id=served["id"], version=1) for n in range(8)]
    responses = _parallel(world.api, calls)
    assert _statuses(responses) == [202] * 3 + [403] * 5, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 403):
        assert "allows 3 deployments" in problem(refused, 403, "plan_limit_reached")["detail"]
    listed = world.api.get("/api/v1/deployments", world.acme["owner"].token).json()["items"]
    assert len(listed) == 3 and _quota(world, "max_deployments") == 3
    gone = world.api.delete(f"/api/v1/deployments/{listed[0]['id']}", token)
    assert gone.status_code == 204
    again = _parallel(
        world.api,
        [_create(token, name=f"e{n}", model_id=served["id"], version=1) for n in range(3)],
    )
    assert _statuses(again) == [202, 403, 403]


def test_parallel_dedicated_creates_stop_at_max_dedicated_replicas(
    world: World, served: dict[str, Any]
) -> None:
    world.api.call(
        "PUT", f"/api/v1/tenants/{world.acme.id}/plan", world.admin_token, json={"plan": "pro"}
    )
    _limit(world, max_dedicated_replicas=5)
    token = world.acme["developer"].token
    body = {"model_id": served["id"], "version": 1, "mode": "dedicated"}
    scaling = {"autoscaling": {"min_replicas": 1, "max_replicas": 2}}
    calls = [_create(token, name=f"d{n}", **body, **scaling) for n in range(6)]
    responses = _parallel(world.api, calls)
    assert _statuses(responses) == [202] * 2 + [403] * 4, [r.text for r in responses]
    assert (
        "dedicated replicas" in problem(max(responses, key=lambda r: r.status_code), 403)["detail"]
    )
    assert _quota(world, "max_dedicated_replicas") == 4
