from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.api.world import World


def test_state_changes_are_audited_with_who_what_where(world: World) -> None:
    api = world.api
    owner = world.acme["owner"]
    key = api.new_key(owner.token, ["inference"])
    api.delete(f"/api/v1/api-keys/{key['id']}", owner.token, headers={"X-Request-ID": "rq-77"})
    events = api.get("/api/v1/audit-events", owner.token).json()["items"]
    revoke = events[0]  # newest first
    assert revoke["action"] == "api_key.revoke"
    assert revoke["actor_type"] == "user"
    assert revoke["actor_id"] == owner.id
    assert revoke["tenant_id"] == world.acme.id
    assert revoke["target_type"] == "api_key"
    assert revoke["target_id"] == key["id"]
    assert revoke["outcome"] == "success"
    assert revoke["request_id"] == "rq-77"
    assert revoke["client_address"] == "testclient"
    assert revoke["created_at"].endswith("Z") or "+00:00" in revoke["created_at"]
    assert events[1]["action"] == "api_key.create"


def test_tenants_see_only_their_own_trail(world: World) -> None:
    api = world.api
    acme = api.get("/api/v1/audit-events", world.acme["owner"].token, params={"limit": 200})
    assert {e["tenant_id"] for e in acme.json()["items"]} == {world.acme.id}
    everything = api.get("/api/v1/audit-events", world.admin_token, params={"limit": 200})
    assert {world.acme.id, world.globex.id} <= {e["tenant_id"] for e in everything.json()["items"]}
    assert api.get("/api/v1/audit-events", world.acme["developer"].token).status_code == 403


def test_a_refused_change_leaves_no_audit_record(world: World) -> None:
    api = world.api
    before = api.get("/api/v1/audit-events", world.admin_token, params={"limit": 200}).json()
    api.post("/api/v1/tenants", world.admin_token, json={"name": "Dup", "slug": "acme"})
    after = api.get("/api/v1/audit-events", world.admin_token, params={"limit": 200}).json()
    assert after == before


def test_the_trail_is_append_only(world: World) -> None:
    api = world.api

    async def tamper(statement: str) -> None:
        async with api.services.db.engine.begin() as conn:
            await conn.execute(text(statement))

    assert api.client.portal is not None
    for statement in ("UPDATE audit_events SET outcome = 'success'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            api.client.portal.call(tamper, statement)
