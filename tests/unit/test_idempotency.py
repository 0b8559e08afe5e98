"""``run_once``, the one Idempotency-Key mechanism, on a SQLite database: what is kept and
replayed, what frees the key, what is refused. (Through the API, on SQLite and Postgres:
tests/api/test_idempotency.py.)"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select

from control_plane.app import create_app
from control_plane.db import Database
from control_plane.errors import (
    Conflict,
    IdempotencyConflict,
    IdempotencyInFlight,
    ValidationFailed,
)
from control_plane.idempotency.service import LEASE, Stored, request_hash, run_once
from control_plane.kit.clock import utcnow
from control_plane.migrate import upgrade
from control_plane.models import IdempotencyKey, Tenant
from tests.support import make_settings

SCOPE = "POST /api/v1/things"
CREATED = Stored(201, {"content-type": "application/json", "location": "/things/1"}, b'{"id":1}')
Scenario = Callable[[Database], Awaitable[None]]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idempotency") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Callable[[Scenario], None]:
    """Run a scenario on a fresh database holding the tenants ``ten_a`` and ``ten_b``."""
    shutil.copyfile(template, tmp_path / "atrium.db")

    async def main(scenario: Scenario) -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/atrium.db")
        try:
            async with db.sessionmaker.begin() as session:
                session.add_all(Tenant(id=t, name=t, slug=t.replace("_", "-")) for t in TENANTS)
            await scenario(db)
        finally:
            await db.dispose()

    return lambda scenario: asyncio.run(main(scenario))


TENANTS = ("ten_a", "ten_b")


class Work:
    """A call that counts its runs and answers (or raises) what it was given."""

    def __init__(self, answer: Stored | BaseException, gate: asyncio.Event | None = None) -> None:
        self.answer = answer
        self.gate = gate
        self.runs = 0
        self.started = asyncio.Event()

    async def __call__(self) -> Stored:
        self.runs += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


async def _once(
    db: Database, work: Work, *, key: str | None = "k1", body: bytes = b"{}", scope: str = SCOPE
) -> tuple[Stored, bool]:
    return await run_once(db, tenant_id="ten_a", key=key, scope=scope, body=body, call=work)


async def _rows(db: Database) -> list[IdempotencyKey]:
    async with db.sessionmaker() as session:
        return list((await session.scalars(select(IdempotencyKey))).all())


def test_without_a_key_every_call_runs(run: Callable[[Scenario], None]) -> None:
    async def scenario(db: Database) -> None:
        work = Work(CREATED)
        assert await _once(db, work, key=None) == (CREATED, False)
        assert await _once(db, work, key=None) == (CREATED, False)
        assert work.runs == 2
        assert await _rows(db) == []

    run(scenario)


@pytest.mark.parametrize(
    "answer", [CREATED, Stored(404, {"content-type": "application/problem+json"}, b"{}")]
)
def test_a_final_answer_is_replayed_with_its_headers(
    run: Callable[[Scenario], None], answer: Stored
) -> None:
    async def scenario(db: Database) -> None:
        work = Work(answer)
        assert await _once(db, work) == (answer, False)
        replayed, was_replayed = await _once(db, work)
        assert was_replayed and work.runs == 1
        assert replayed == Stored(
            answer.status_code, {**answer.headers, "Idempotent-Replayed": "true"}, answer.body
        )
        (row,) = await _rows(db)
        assert (row.state, row.expires_at - row.created_at) == ("completed", timedelta(hours=24))

    run(scenario)


@pytest.mark.parametrize(
    "answer",
    [
        Stored(500, {}, b"boom"),
        Stored(503, {}, b"later"),
        Stored(429, {"retry-after": "3"}, b"slow down"),
        Conflict("taken"),
    ],
)
def test_a_failure_or_try_again_frees_the_key(
    run: Callable[[Scenario], None], answer: Stored | Exception
) -> None:
    async def scenario(db: Database) -> None:
        for _ in range(2):
            if isinstance(answer, Exception):
                with pytest.raises(Conflict):
                    await _once(db, Work(answer))
            else:
                assert await _once(db, Work(answer)) == (answer, False)
            assert await _rows(db) == []
        assert await _once(db, Work(CREATED)) == (CREATED, False)

    run(scenario)


def test_a_key_is_one_request_on_one_route_of_one_tenant(run: Callable[[Scenario], None]) -> None:
    async def scenario(db: Database) -> None:
        work = Work(CREATED)
        await _once(db, work)
        with pytest.raises(IdempotencyConflict, match="another request to POST /api/v1/things"):
            await _once(db, work, body=b'{"n": 2}')
        assert (await _once(db, work, scope="POST /api/v1/others"))[1] is False
        other = await run_once(db, tenant_id="ten_b", key="k1", scope=SCOPE, body=b"{}", call=work)
        assert other == (CREATED, False) and work.runs == 3

    run(scenario)


def test_while_the_first_runs_a_retry_is_told_to_wait(run: Callable[[Scenario], None]) -> None:
    async def scenario(db: Database) -> None:
        gate = asyncio.Event()
        work = Work(CREATED, gate)
        first = asyncio.create_task(_once(db, work))
        await work.started.wait()
        with pytest.raises(IdempotencyInFlight) as refused:
            await _once(db, Work(CREATED))
        assert refused.value.headers == {"Retry-After": "1"}
        with pytest.raises(IdempotencyConflict):
            await _once(db, Work(CREATED), body=b"other")
        gate.set()
        assert await first == (CREATED, False)
        assert (await _once(db, Work(CREATED)))[1] is True

    run(scenario)


def test_a_cancelled_request_frees_its_key(run: Callable[[Scenario], None]) -> None:
    """As when the client goes away: the request's task is cancelled (anyio's scopes keep
    cancelling every later await, unless shielded)."""

    async def scenario(db: Database) -> None:
        work = Work(CREATED, asyncio.Event())
        async with anyio.create_task_group() as group:
            group.start_soon(_once, db, work)
            await work.started.wait()
            assert len(await _rows(db)) == 1
            group.cancel_scope.cancel()
        assert await _rows(db) == []

    run(scenario)


@pytest.mark.parametrize(("age", "runs"), [(timedelta(0), 0), (LEASE + timedelta(seconds=1), 1)])
def test_a_claim_whose_request_died_lapses_after_the_lease(
    run: Callable[[Scenario], None], age: timedelta, runs: int
) -> None:
    async def scenario(db: Database) -> None:
        now = utcnow()
        async with db.sessionmaker.begin() as session:
            session.add(_row("ten_a", created_at=now - age, expires_at=now + timedelta(hours=1)))
        work = Work(CREATED)
        if runs:
            assert await _once(db, work) == (CREATED, False)
        else:
            with pytest.raises(IdempotencyInFlight):
                await _once(db, work)
        assert work.runs == runs

    run(scenario)


def test_a_claim_deletes_expired_keys_of_every_tenant(run: Callable[[Scenario], None]) -> None:
    async def scenario(db: Database) -> None:
        past = utcnow() - timedelta(seconds=1)
        async with db.sessionmaker.begin() as session:
            session.add(_row("ten_b", key="old", created_at=past, expires_at=past))
            session.add(_row("ten_a", key="k1", created_at=past, expires_at=past))
        work = Work(CREATED)
        assert await _once(db, work) == (CREATED, False)
        assert [(r.tenant_id, r.key, r.state) for r in await _rows(db)] == [
            ("ten_a", "k1", "completed")
        ]

    run(scenario)


@pytest.mark.parametrize("key", ["", "k" * 256, "clé", "a\nb", "tab\there", "\x7f"])
def test_a_key_is_1_to_255_printable_ascii_characters(
    run: Callable[[Scenario], None], key: str
) -> None:
    async def scenario(db: Database) -> None:
        work = Work(CREATED)
        with pytest.raises(ValidationFailed) as refused:
            await _once(db, work, key=key)
        assert refused.value.extra == {"field": "Idempotency-Key"}
        assert work.runs == 0
        assert await _once(db, work, key="k" * 255) == (CREATED, False)
        assert await _once(db, work, key="a b~!") == (CREATED, False)

    run(scenario)


def test_the_create_route_documents_the_header_and_its_problems(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///:memory:")
    operation = create_app(settings).openapi()["paths"]["/api/v1/deployments"]["post"]
    (header,) = (p for p in operation["parameters"] if p["in"] == "header")
    assert (header["name"], header["required"]) == ("Idempotency-Key", False)
    assert "idempotency_in_flight" in operation["responses"]["409"]["description"]
    assert "idempotency_conflict" in operation["responses"]["422"]["description"]
    assert "validation_error" in operation["responses"]["422"]["description"]
    assert "DeploymentRead" in str(operation["responses"]["202"])


def _row(tenant_id: str, key: str = "k1", **times: object) -> IdempotencyKey:
    return IdempotencyKey(
        id=f"idem_{tenant_id}_{key}",
        tenant_id=tenant_id,
        scope=SCOPE,
        key=key,
        request_hash=request_hash(SCOPE, b"{}"),
        state="in_flight",
        **times,
    )
