from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner, Result

from control_plane.audit.chain import HASHED, Break, Head, content_hash, verify
from control_plane.audit.repository import AuditRepository
from control_plane.audit.service import record
from control_plane.cli import app
from control_plane.models import AuditEvent
from tests.api.world import Api, World


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
    statements = ["UPDATE audit_events SET outcome = 'success'", "DELETE FROM audit_events"]
    if _postgres(api):  # SQLite has no TRUNCATE
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            _sql(api, statement)


def test_an_intact_trail_verifies(world: World) -> None:
    heads, breaks = _verify(world.api)
    assert breaks == []
    assert {h.chain for h in heads} >= {"platform", world.acme.id, world.globex.id}
    assert _cli_verify(world.api).exit_code == 0


@pytest.mark.parametrize(
    ("tampering", "reason"),
    [
        (
            "UPDATE audit_events SET actor_id = 'usr_forged' WHERE id = :id",
            "content does not match",
        ),
        ("UPDATE audit_events SET details = '{\"x\": 1}' WHERE id = :id", "content does not match"),
        ("DELETE FROM audit_events WHERE id = :id", "missing"),
    ],
)
def test_verify_names_the_first_tampered_row(world: World, tampering: str, reason: str) -> None:
    api = world.api
    victim, after = _chain(api, world.acme.id)[2:4]
    _bypassing_the_guards(api, tampering, id=victim.id)
    heads, breaks = _verify(api)
    (broken,) = breaks
    bad = after if "DELETE" in tampering else victim
    assert (broken.event_id, broken.chain, broken.seq) == (bad.id, world.acme.id, bad.seq)
    assert reason in broken.reason
    assert world.acme.id not in {h.chain for h in heads}  # the other chains still verify
    result = _cli_verify(api)
    assert result.exit_code == 1
    assert bad.id in result.output


def test_a_forged_row_with_a_recomputed_hash_breaks_the_next_link(world: World) -> None:
    api = world.api
    victim, after = _chain(api, world.acme.id)[1:3]
    forged = {**_fields(victim), "actor_id": "usr_forged"}
    forged["hash"] = content_hash(forged)
    _bypassing_the_guards(
        api,
        "UPDATE audit_events SET actor_id = 'usr_forged', hash = :hash WHERE id = :id",
        id=victim.id,
        hash=forged["hash"],
    )
    (broken,) = _verify(api)[1]
    assert (broken.event_id, broken.seq) == (after.id, after.seq)
    assert "does not follow" in broken.reason


def test_concurrent_writers_chain_one_after_another(world: World) -> None:
    api = world.api
    before = len(_chain(api, world.acme.id))

    async def write(n: int) -> None:
        async with api.services.db.session_scope() as session:
            for tenant in (world.acme.id, None):
                record(session, actor=None, action="test.concurrent", tenant_id=tenant)
            await session.flush()
            await asyncio.sleep(0.01 * (n % 3))  # others try to write meanwhile

    async def many() -> None:
        await asyncio.gather(*(write(n) for n in range(12)))

    assert api.client.portal is not None
    api.client.portal.call(many)
    rows = _chain(api, world.acme.id)
    assert [r.seq for r in rows] == list(range(1, before + 13))
    assert _verify(api)[1] == []


def test_failed_logins_store_well_formed_emails_only(world: World) -> None:
    api = world.api
    garbage = ["x" * 5000, "hunter2-correct-horse", "a@b@c", "'; DROP TABLE users; --@x.com"]
    for username in [*garbage, "Nobody@Example.COM"]:
        assert api.login(username, "wrong password").status_code in (401, 422, 429)
    failures = api.get(
        "/api/v1/audit-events", world.admin_token, params={"action": "auth.login", "limit": 200}
    ).json()["items"]
    stored = [e["details"] for e in failures if e["outcome"] == "failure"]
    assert any(d.get("email") == "nobody@example.com" for d in stored)
    trail = json.dumps(stored)
    assert not [username for username in garbage if username in trail]


def _postgres(api: Api) -> bool:
    return bool(api.services.db.engine.dialect.name == "postgresql")


def _sql(api: Api, statement: str, *, replica: bool = False, **params: Any) -> None:
    async def run() -> None:
        async with api.services.db.engine.begin() as conn:
            if replica and _postgres(api):  # triggers off: superuser only
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(text(statement), params)

    assert api.client.portal is not None
    api.client.portal.call(run)


def _bypassing_the_guards(api: Api, statement: str, **params: Any) -> None:
    """What someone with the database's superuser (or its file) can do."""
    if not _postgres(api):
        _sql(api, "DROP TRIGGER audit_events_no_update")
        _sql(api, "DROP TRIGGER audit_events_no_delete")
    _sql(api, statement, replica=True, **params)


def _chain(api: Api, tenant_id: str) -> list[AuditEvent]:
    async def rows() -> list[AuditEvent]:
        async with api.services.db.sessionmaker() as session:
            repo = AuditRepository(session, tenant_id)
            return list(await repo.links(tenant_id, after=0, limit=10_000))

    assert api.client.portal is not None
    return api.client.portal.call(rows)


def _verify(api: Api) -> tuple[list[Head], list[Break]]:
    assert api.client.portal is not None
    return api.client.portal.call(verify, api.services.db)


def _cli_verify(api: Api) -> Result:
    env = {
        "ATRIUM_ENVIRONMENT": "test",
        "ATRIUM_HOME": str(api.settings.home_dir),
        "ATRIUM_DATABASE_URL": api.settings.resolved_database_url,
    }
    return CliRunner().invoke(app, ["audit", "verify"], env=env)


def _fields(row: AuditEvent) -> dict[str, Any]:
    return {name: getattr(row, name) for name in HASHED}
