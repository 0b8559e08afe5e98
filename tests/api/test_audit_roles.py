"""On Postgres the audit table belongs to a role of its own: the application's role, which
runs the migrations, keeps INSERT and SELECT only, and cannot switch the guards off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from control_plane.audit.chain import ownership_warning, verify
from control_plane.audit.service import record
from control_plane.db import Database
from control_plane.migrate import alembic_config, upgrade
from tests.api.databases import postgres_base_url
from tests.support import service_missing

REFUSED_TO_THE_APPLICATION = [
    "UPDATE audit_events SET outcome = 'x'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
    "DROP TRIGGER audit_events_no_truncate ON audit_events",
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS "
    "'BEGIN RETURN NULL; END' LANGUAGE plpgsql",
    "DROP TABLE audit_events",
    "DROP SCHEMA public CASCADE",
]


@pytest.fixture
def app_database() -> Iterator[tuple[URL, Engine]]:
    """A database owned by a plain login role that may create roles (not a superuser), and
    a superuser's engine."""
    base = postgres_base_url()
    if base is None:
        service_missing("Postgres (ATRIUM_TEST_DATABASE_URL)")
        raise AssertionError("unreachable")
    admin_url = make_url(base).set(drivername="postgresql+psycopg")
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        admin.connect().close()
    except OperationalError as exc:
        service_missing(f"Postgres at ATRIUM_TEST_DATABASE_URL ({exc.orig})")
        raise
    name = f"atrium_app_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN CREATEROLE PASSWORD '{name}'"))
        conn.execute(text(f'CREATE DATABASE "{name}" OWNER {name}'))
    try:
        yield admin_url.set(username=name, password=name, database=name), admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


def _insert_legacy_rows(engine: Engine) -> None:
    """Rows written before the chain existed (revision 0007)."""
    with engine.begin() as conn:
        for n, tenant in enumerate(["ten_a", None, "ten_a"]):
            conn.execute(
                text(
                    "INSERT INTO audit_events (id, tenant_id, actor_type, action, outcome, "
                    "details, created_at) VALUES (:id, :tenant, 'user', 'x.y', 'success', "
                    "'{\"n\": 1}', :at)"
                ),
                {"id": f"aud_{n}", "tenant": tenant, "at": datetime(2026, 1, 1, n, tzinfo=UTC)},
            )


def _refusals(engine: Engine) -> list[str]:
    refused = []
    for statement in REFUSED_TO_THE_APPLICATION:
        with engine.connect() as conn:
            try:
                conn.execute(text(statement))
            except DBAPIError as exc:
                if "permission denied" in str(exc) or "must be owner" in str(exc):
                    refused.append(statement)
            conn.rollback()
    return refused


async def _record_and_verify(url: str) -> tuple[int, int, str | None]:
    db = Database(url)
    try:
        async with db.session_scope() as session:
            record(session, actor=None, action="test.after", tenant_id="ten_a")
        heads, breaks = await verify(db)
        return sum(h.rows for h in heads), len(breaks), await ownership_warning(db)
    finally:
        await db.dispose()


def test_the_application_role_may_only_append_and_read(
    app_database: tuple[URL, Engine],
) -> None:
    app_url, admin = app_database
    url = app_url.render_as_string(hide_password=False)
    upgrade(url, "0007")
    engine = create_engine(app_url)
    try:
        _insert_legacy_rows(engine)
        upgrade(url)
        command.downgrade(alembic_config(url), "0007")  # hands the table back
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update"))
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update"))
        upgrade(url)
        with admin.connect() as conn:  # as the README says, once the migration has run
            conn.execute(text(f"ALTER ROLE {app_url.username} NOCREATEROLE"))
        with engine.connect() as conn:
            owner = conn.scalar(
                text("SELECT tableowner FROM pg_tables WHERE tablename = :t"), {"t": "audit_events"}
            )
        assert owner == "atrium_audit_owner"
        assert _refusals(engine) == REFUSED_TO_THE_APPLICATION
        # the legacy rows joined their chains, new rows follow them
        assert asyncio.run(_record_and_verify(url)) == (4, 0, None)
    finally:
        engine.dispose()


def test_even_a_superuser_cannot_truncate_the_trail(app_database: tuple[URL, Engine]) -> None:
    app_url, _admin = app_database
    url = app_url.render_as_string(hide_password=False)
    upgrade(url)
    assert asyncio.run(_record_and_verify(url))[:2] == (1, 0)
    base = postgres_base_url()
    assert base is not None
    superuser = create_engine(
        make_url(base).set(drivername="postgresql+psycopg", database=app_url.database)
    )
    try:
        for statement in ("TRUNCATE audit_events", "DELETE FROM audit_events"):
            with superuser.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(statement))
    finally:
        superuser.dispose()
