"""Migration 0008 links the rows already in the audit trail into hash chains (SQLite; the
Postgres side is in tests/api/test_audit_roles.py) and keeps the trail append-only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from control_plane.audit.chain import Break, Head, verify
from control_plane.db import Database
from control_plane.migrate import upgrade


async def _verify(url: str) -> tuple[list[Head], list[Break]]:
    db = Database(url)
    try:
        return await verify(db)
    finally:
        await db.dispose()


def test_rows_written_before_the_chain_join_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/atrium.db"
    upgrade(url, "0007")
    engine = create_engine(f"sqlite:///{tmp_path}/atrium.db")
    try:
        with engine.begin() as conn:
            for n, tenant in enumerate(["ten_a", None, "ten_a", "ten_b"]):
                conn.execute(
                    text(
                        "INSERT INTO audit_events (id, tenant_id, actor_type, action, outcome, "
                        "details, created_at) VALUES (:id, :tenant, 'user', 'x.y', 'success', "
                        "'{\"n\": 1}', :at)"
                    ),
                    {"id": f"aud_{n}", "tenant": tenant, "at": datetime(2026, 1, 1, n, tzinfo=UTC)},
                )
        upgrade(url)
        heads, breaks = asyncio.run(_verify(url))
        assert breaks == []
        assert {(h.chain, h.rows) for h in heads} == {("platform", 1), ("ten_a", 2), ("ten_b", 1)}
        for statement in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events"):
            with engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(statement))
    finally:
        engine.dispose()
