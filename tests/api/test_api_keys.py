from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from tests.api.world import Api, World, run_async

ME = "/api/v1/auth/me"


def test_key_is_shown_once_and_authenticates(world: World) -> None:
    api = world.api
    created = api.new_key(world.acme["developer"].token, ["inference", "models:read"])
    assert re.fullmatch(r"atr_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", created["key"])
    assert created["key"].split("_")[1] == created["prefix"]
    listed = api.get("/api/v1/api-keys", world.acme["developer"].token).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    me = api.get(ME, created["key"]).json()
    assert me == {
        "api_key_id": created["id"],
        "tenant_id": world.acme.id,
        "scopes": ["inference", "models:read"],
    }


def test_revocation_takes_effect_on_the_next_request(world: World) -> None:
    api = world.api
    token = world.acme["developer"].token
    created = api.new_key(token, ["inference"])
    assert api.get(ME, created["key"]).status_code == 200  # now cached
    assert api.delete(f"/api/v1/api-keys/{created['id']}", token).status_code == 204
    response = api.get(ME, created["key"])
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_expired_key_is_refused(world: World) -> None:
    api = world.api
    soon = datetime.now(UTC) + timedelta(seconds=1)
    created = api.new_key(world.acme["developer"].token, ["inference"], expires_at=soon.isoformat())
    assert api.get(ME, created["key"]).status_code == 200
    time.sleep(1.2)
    assert api.get(ME, created["key"]).status_code == 401


def test_expiry_in_the_past_is_refused(world: World) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    response = world.api.post(
        "/api/v1/api-keys",
        world.acme["developer"].token,
        json={"name": "k", "scopes": ["inference"], "expires_at": past},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "expires_at"


def test_scopes_cannot_exceed_the_role(world: World) -> None:
    api = world.api
    response = api.post(
        "/api/v1/api-keys",
        world.acme["viewer"].token,
        json={"name": "k", "scopes": ["models:write"]},
    )
    assert response.status_code == 403
    unknown = api.post(
        "/api/v1/api-keys", world.acme["owner"].token, json={"name": "k", "scopes": ["root"]}
    )
    assert unknown.status_code == 422


def test_key_scopes_limit_what_it_can_do(world: World) -> None:
    api = world.api
    key = api.new_key(world.acme["owner"].token, ["models:read"])["key"]
    assert api.get("/api/v1/users", key).status_code == 403  # owners can; this key cannot
    assert (
        api.post("/api/v1/api-keys", key, json={"name": "x", "scopes": ["inference"]}).status_code
        == 403
    )


def test_a_key_cannot_mint_a_wider_key(world: World) -> None:
    api = world.api
    key = api.new_key(world.acme["owner"].token, ["keys:write", "inference"])["key"]
    wider = api.post("/api/v1/api-keys", key, json={"name": "x", "scopes": ["models:write"]})
    assert wider.status_code == 403
    narrower = api.post("/api/v1/api-keys", key, json={"name": "x", "scopes": ["inference"]})
    assert narrower.status_code == 201


def test_demoting_the_creator_narrows_the_key(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    key = api.new_key(dev.token, ["models:write", "inference"])["key"]
    assert api.get(ME, key).json()["scopes"] == ["inference", "models:write"]
    api.patch(f"/api/v1/users/{dev.id}", world.acme["owner"].token, json={"role": "viewer"})
    assert api.get(ME, key).json()["scopes"] == ["inference"]


def test_deleting_the_creator_revokes_the_key(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    key = api.new_key(dev.token, ["inference"])["key"]
    assert api.get(ME, key).status_code == 200
    assert api.delete(f"/api/v1/users/{dev.id}", world.acme["owner"].token).status_code == 204
    assert api.get(ME, key).status_code == 401


def test_key_of_a_suspended_tenant_is_refused(world: World) -> None:
    api = world.api
    key = api.new_key(world.acme["developer"].token, ["inference"])["key"]
    assert api.get(ME, key).status_code == 200
    api.patch(f"/api/v1/tenants/{world.acme.id}", world.admin_token, json={"status": "suspended"})
    refused = api.get(ME, key)
    assert refused.status_code == 403
    assert refused.json()["code"] == "tenant_suspended"
    assert api.get(ME, world.acme["owner"].token).json()["code"] == "tenant_suspended"
    api.patch(f"/api/v1/tenants/{world.acme.id}", world.admin_token, json={"status": "active"})
    assert api.get(ME, key).status_code == 200


@pytest.mark.parametrize(
    "bad",
    ["atr_short_x", "atr_abcdefgh_" + "A" * 43, "atr_ABCDEFGH_" + "A" * 43, "atr_" + "x" * 60],
)
def test_unknown_or_malformed_keys(api: Api, bad: str) -> None:
    assert api.get(ME, bad).status_code == 401


def test_last_used_is_recorded_in_batches(world: World) -> None:
    api = world.api
    token = world.acme["developer"].token
    created = api.new_key(token, ["inference"])
    assert created["last_used_at"] is None
    for _ in range(3):
        api.get(ME, created["key"])
    deadline = time.monotonic() + 5
    used = None
    while time.monotonic() < deadline and used is None:
        time.sleep(0.1)
        used = api.get("/api/v1/api-keys", token).json()["items"][0]["last_used_at"]
    assert used is not None


def test_members_see_their_own_keys_admins_see_all(world: World) -> None:
    api = world.api
    dev_key = api.new_key(world.acme["developer"].token, ["inference"])
    viewer_key = api.new_key(world.acme["viewer"].token, ["inference"])
    dev_sees = {
        k["id"] for k in api.get("/api/v1/api-keys", world.acme["developer"].token).json()["items"]
    }
    admin_sees = {
        k["id"] for k in api.get("/api/v1/api-keys", world.acme["admin"].token).json()["items"]
    }
    assert dev_sees == {dev_key["id"]}
    assert admin_sees == {dev_key["id"], viewer_key["id"]}
    # a developer cannot revoke a colleague's key
    other = api.delete(f"/api/v1/api-keys/{viewer_key['id']}", world.acme["developer"].token)
    assert other.status_code == 404
    assert api.get(ME, viewer_key["key"]).status_code == 200


def test_platform_admins_hold_no_keys(world: World) -> None:
    response = world.api.post(
        "/api/v1/api-keys", world.admin_token, json={"name": "k", "scopes": ["inference"]}
    )
    assert response.status_code == 403


def _expiry(key: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(key["expires_at"])


def test_a_key_made_by_a_key_never_outlives_it(world: World) -> None:
    api = world.api
    ends = datetime.now(UTC) + timedelta(days=1)
    parent = api.new_key(
        world.acme["owner"].token, ["keys:write", "inference"], expires_at=ends.isoformat()
    )
    forever = api.new_key(parent["key"], ["inference"])
    later = (ends + timedelta(days=30)).isoformat()
    longer = api.new_key(parent["key"], ["inference"], expires_at=later)
    sooner = api.new_key(
        parent["key"], ["inference"], expires_at=(ends - timedelta(hours=1)).isoformat()
    )
    assert _expiry(forever) == _expiry(longer) == _expiry(parent)
    assert _expiry(sooner) < _expiry(parent)


def test_revoking_a_key_revokes_the_keys_it_made(world: World) -> None:
    api, token = world.api, world.acme["owner"].token
    parent = api.new_key(token, ["keys:write", "inference"])
    child = api.new_key(parent["key"], ["keys:write", "inference"])
    grandchild = api.new_key(child["key"], ["inference"])
    unrelated = api.new_key(token, ["inference"])
    for key in (child, grandchild):
        assert api.get(ME, key["key"]).status_code == 200
    assert api.delete(f"/api/v1/api-keys/{parent['id']}", token).status_code == 204
    for key in (parent, child, grandchild):
        assert api.get(ME, key["key"]).status_code == 401
    assert api.get(ME, unrelated["key"]).status_code == 200
    listed = {k["id"]: k for k in api.get("/api/v1/api-keys", token).json()["items"]}
    assert listed[grandchild["id"]]["revoked_at"] is not None
    assert listed[unrelated["id"]]["revoked_at"] is None


def test_a_key_made_while_its_parent_was_revoked_is_refused(world: World) -> None:
    """A child committed just after the revocation's cascade (a race) is refused anyway."""
    api, token = world.api, world.acme["owner"].token
    parent = api.new_key(token, ["keys:write", "inference"])
    child = api.new_key(parent["key"], ["inference"])

    async def revoke_parent_only() -> None:
        async with api.services.db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE api_keys SET revoked_at = :now WHERE id = :id"),
                {"now": datetime.now(UTC), "id": parent["id"]},
            )
        api.services.authenticator.invalidate()

    run_async(api, revoke_parent_only)
    assert api.get(ME, child["key"]).status_code == 401


def test_a_new_key_is_not_stored_by_caches(world: World) -> None:
    response = world.api.post(
        "/api/v1/api-keys", world.acme["owner"].token, json={"name": "k", "scopes": ["inference"]}
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def _random_key() -> str:
    prefix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return f"atr_{prefix}_{secrets.token_urlsafe(32)}"


@contextmanager
def _key_queries(api: Api) -> Iterator[list[str]]:
    """The SQL statements that read api_keys while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM api_keys" in statement:
            seen.append(statement)

    engine = api.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_repeated_unknown_key_costs_one_query(api: Api) -> None:
    key = _random_key()
    with _key_queries(api) as queries:
        for _ in range(30):
            assert api.get(ME, key).status_code == 401
    assert len(queries) == 1


def test_a_flood_of_random_keys_costs_a_few_queries(world: World) -> None:
    api = world.api
    real = api.new_key(world.acme["developer"].token, ["inference"])["key"]
    keys = [_random_key() for _ in range(100)] + [real]

    async def flood() -> list[int]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            calls = [client.get(ME, headers={"Authorization": f"Bearer {k}"}) for k in keys]
            return [r.status_code for r in await asyncio.gather(*calls)]

    with _key_queries(api) as queries:
        statuses = run_async(api, flood)
    assert statuses == [401] * 100 + [200]  # the real key among them is found
    assert len(queries) <= 10, len(queries)
