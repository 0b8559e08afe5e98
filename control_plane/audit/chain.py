"""Hash chains over the audit trail: one per tenant, one for the platform.

Each row stores ``seq`` (its place in its chain), ``prev_hash`` (the hash of the row
before it) and ``hash`` (SHA-256 over its own content and ``prev_hash``). Changing,
removing or inserting a row in the middle breaks the chain at that row;
``atrium audit verify`` finds it. (Cutting rows off the end leaves a shorter, valid
chain: compare the heads it prints with ones kept elsewhere.)

Rows are linked as they are inserted, under a lock on their chain held until the
transaction ends, so concurrent writers chain one after another: a transaction-level
advisory lock on Postgres, the database's write lock on SQLite.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, event, select, text
from sqlalchemy.orm import Mapper, Session, SessionTransaction, object_session

from control_plane.audit.repository import AuditRepository
from control_plane.db import Database
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.models import AuditEvent

PLATFORM_CHAIN = "platform"
GENESIS = "0" * 64
HASHED = (
    "id",
    "chain",
    "seq",
    "prev_hash",
    "tenant_id",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "request_id",
    "client_address",
    "created_at",
    "details",
)
_LOCK_CLASS = 0x41554454  # "AUDT": the advisory-lock namespace of audit chains
_HEADS = "audit_chain_heads"  # session.info: chain -> (seq, hash) within this transaction
_BATCH = 1000


def chain_of(tenant_id: str | None) -> str:
    return tenant_id or PLATFORM_CHAIN


def content_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 of the row's fields (``prev_hash`` among them), in a canonical JSON."""
    body = {name: row[name] for name in HASHED}
    created: datetime = row["created_at"]
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    body["created_at"] = created.isoformat(timespec="microseconds")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fields(row: AuditEvent) -> dict[str, Any]:
    return {name: getattr(row, name) for name in HASHED}


@event.listens_for(AuditEvent, "before_insert")
def _link(_mapper: Mapper[Any], connection: Connection, target: AuditEvent) -> None:
    session = object_session(target)
    heads: dict[str, tuple[int, str]] = session.info.setdefault(_HEADS, {}) if session else {}
    chain = chain_of(target.tenant_id)
    if chain not in heads:
        heads[chain] = _locked_head(connection, chain)
    seq, prev = heads[chain]
    target.chain, target.seq, target.prev_hash = chain, seq + 1, prev
    if target.created_at is None:
        target.created_at = utcnow()
    target.hash = content_hash(_fields(target))
    heads[chain] = (target.seq, target.hash)


@event.listens_for(Session, "after_transaction_end")
def _forget_heads(session: Session, _transaction: SessionTransaction) -> None:
    session.info.pop(_HEADS, None)


def _locked_head(connection: Connection, chain: str) -> tuple[int, str]:
    """Lock ``chain`` until this transaction ends; then its last (seq, hash)."""
    if connection.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(chain.encode()).digest()[:4], "big", signed=True)
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": _LOCK_CLASS, "key": key}
        )
    else:  # SQLite: a write that changes nothing takes the database's write lock now
        connection.execute(text("UPDATE audit_events SET id = id WHERE 0 = 1"))
    table = AuditEvent.__table__
    last = connection.execute(
        select(table.c.seq, table.c.hash)
        .where(table.c.chain == chain)
        .order_by(table.c.seq.desc())
        .limit(1)
    ).first()
    return (int(last.seq), str(last.hash)) if last else (0, GENESIS)


@dataclass(frozen=True)
class Head:
    chain: str
    rows: int
    hash: str


@dataclass(frozen=True)
class Break:
    """The first row of a chain that does not verify, and why."""

    event_id: str
    chain: str
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit row {self.event_id} (chain {self.chain}, #{self.seq}): {self.reason}"


async def verify(db: Database) -> tuple[list[Head], list[Break]]:
    """Walk every chain: the heads of those that verify, the first bad row of the others."""
    async with db.sessionmaker() as session:
        lengths = await AuditRepository(session, PLATFORM).max_by(AuditEvent.chain, AuditEvent.seq)
    heads: list[Head] = []
    breaks: list[Break] = []
    for chain in sorted(lengths, key=lambda c: (c != PLATFORM_CHAIN, c)):
        outcome = await _verify_chain(db, chain)
        if isinstance(outcome, Break):
            breaks.append(outcome)
        else:
            heads.append(outcome)
    return heads, breaks


async def _verify_chain(db: Database, chain: str) -> Head | Break:
    seq, prev = 0, GENESIS
    while True:
        async with db.sessionmaker() as session:
            rows = await AuditRepository(session, PLATFORM).links(chain, after=seq, limit=_BATCH)
        for row in rows:
            problem = _problem(row, seq, prev)
            if problem is not None:
                return Break(row.id, chain, row.seq, problem)
            seq, prev = row.seq, row.hash
        if len(rows) < _BATCH:
            return Head(chain, seq, prev)


def _problem(row: AuditEvent, seq: int, prev: str) -> str | None:
    if row.seq != seq + 1:
        gap = f"#{seq + 1}" if row.seq == seq + 2 else f"#{seq + 1} to #{row.seq - 1}"
        return f"row(s) {gap} before it are missing (deleted)"
    if row.prev_hash != prev:
        return f"it does not follow row #{seq} (that row was changed or replaced)"
    if content_hash(_fields(row)) != row.hash:
        return "its content does not match its hash (the row was changed)"
    return None


async def ownership_warning(db: Database) -> str | None:
    """On Postgres: why the role this connects as could still rewrite the audit trail
    (it owns the table, or may take it: superuser, CREATEROLE); None when it cannot."""
    if db.engine.dialect.name != "postgresql":
        return None
    async with db.engine.connect() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT current_user AS me, t.tableowner AS owner, "
                    "r.rolsuper OR r.rolcreaterole AS powerful FROM pg_tables t "
                    "JOIN pg_roles r ON r.rolname = current_user "
                    "WHERE t.tablename = 'audit_events' AND t.schemaname = current_schema()"
                )
            )
        ).one()
    if found.owner == found.me:
        return (
            f"audit_events is owned by {found.me}, the role this connects as: it could drop "
            "the append-only triggers (hand the table over, see the README)"
        )
    if found.powerful:
        return (
            f"{found.me}, the role this connects as, is a superuser or may create roles: it "
            "could take the audit table back (run the application as a plainer role)"
        )
    return None
