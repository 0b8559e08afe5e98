"""audit_chain: rows of the audit trail carry a hash chain; on Postgres the table refuses
TRUNCATE too and belongs to a role of its own (the application keeps INSERT and SELECT)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import logging
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from alembic import op

from control_plane.audit.chain import GENESIS, content_hash

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
OWNER_ROLE = "atrium_audit_owner"
CHAIN_COLUMNS = ("chain", "seq", "prev_hash", "hash")
_SQLITE_GUARDS = ("UPDATE", "DELETE")

_PG_NO_TRUNCATE = """
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""

# The table, its guard function and its schema (whose owner could drop any table in it)
# go to a role of their own; the role that owned the table (the application's) keeps
# INSERT and SELECT on it, and USAGE and CREATE on the schema for its other tables.
# Needs a role that may create roles (superuser or CREATEROLE) and owns the schema;
# otherwise nothing changes and a warning says so.
_PG_HAND_OVER = f"""
DO $$
DECLARE
    app text := (SELECT tableowner FROM pg_tables
                 WHERE tablename = 'audit_events' AND schemaname = current_schema());
    here text := quote_ident(current_schema());
    db text := quote_ident(current_database());
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
            CREATE ROLE {OWNER_ROLE} NOLOGIN;
        END IF;
    EXCEPTION WHEN duplicate_object THEN NULL;
    END;
    EXECUTE 'GRANT {OWNER_ROLE} TO ' || quote_ident(current_user);
    IF (SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace
        WHERE nspname = current_schema()) THEN
        EXECUTE 'GRANT CREATE ON DATABASE ' || db || ' TO {OWNER_ROLE}';
        EXECUTE 'ALTER SCHEMA ' || here || ' OWNER TO {OWNER_ROLE}';
        EXECUTE 'REVOKE CREATE ON DATABASE ' || db || ' FROM {OWNER_ROLE}';
    END IF;
    EXECUTE 'GRANT USAGE, CREATE ON SCHEMA ' || here || ' TO ' || quote_ident(app);
    ALTER TABLE audit_events OWNER TO {OWNER_ROLE};
    ALTER FUNCTION audit_events_append_only() OWNER TO {OWNER_ROLE};
    EXECUTE 'GRANT SELECT, INSERT ON audit_events TO ' || quote_ident(app);
    EXECUTE 'REVOKE {OWNER_ROLE} FROM ' || quote_ident(current_user);
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING USING MESSAGE = 'audit_events stays owned by ' || current_user || ': '
        || SQLERRM || ' (see the README, audit trail)';
END $$;
"""  # noqa: S608 (built from constants)

_PG_TAKE_BACK = f"""
DO $$
DECLARE
    me text := quote_ident(current_user);
BEGIN
    IF EXISTS (SELECT FROM pg_tables WHERE tablename = 'audit_events'
               AND schemaname = current_schema() AND tableowner = '{OWNER_ROLE}') THEN
        EXECUTE 'GRANT {OWNER_ROLE} TO ' || me;
        EXECUTE 'ALTER TABLE audit_events OWNER TO ' || me;
        EXECUTE 'ALTER FUNCTION audit_events_append_only() OWNER TO ' || me;
        IF (SELECT pg_get_userbyid(nspowner) FROM pg_namespace
            WHERE nspname = current_schema()) = '{OWNER_ROLE}' THEN
            EXECUTE 'ALTER SCHEMA ' || quote_ident(current_schema()) || ' OWNER TO ' || me;
        END IF;
        EXECUTE 'REVOKE {OWNER_ROLE} FROM ' || me;
    END IF;
END $$;
"""  # noqa: S608 (built from constants)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _guards(enabled=False, postgres=postgres)
    _link_existing_rows()
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        for name in CHAIN_COLUMNS:
            batch_op.alter_column(name, nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_chain"), ["chain", "seq"])
    _guards(enabled=True, postgres=postgres)
    if postgres:
        op.execute(_PG_NO_TRUNCATE)
        op.execute(_PG_HAND_OVER)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(_PG_TAKE_BACK)
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
    _guards(enabled=False, postgres=postgres)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_chain"), type_="unique")
        for name in reversed(CHAIN_COLUMNS):
            batch_op.drop_column(name)
    _guards(enabled=True, postgres=postgres)


def _guards(*, enabled: bool, postgres: bool) -> None:
    """The append-only triggers, off while this migration rewrites the table. (On SQLite,
    batch mode rebuilds the table, which drops its triggers: they are made again.)"""
    if postgres:
        verb = "ENABLE" if enabled else "DISABLE"
        op.execute(f"ALTER TABLE audit_events {verb} TRIGGER audit_events_no_update")
        return
    for action in _SQLITE_GUARDS:
        op.execute(f"DROP TRIGGER IF EXISTS audit_events_no_{action.lower()}")
        if enabled:
            op.execute(
                f"CREATE TRIGGER audit_events_no_{action.lower()} BEFORE {action} "
                "ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


_TABLE = sa.table(
    "audit_events",
    *(sa.column(name, sa.String()) for name in ("id", "tenant_id", "actor_type", "actor_id")),
    *(sa.column(name, sa.String()) for name in ("action", "target_type", "target_id")),
    *(sa.column(name, sa.String()) for name in ("outcome", "request_id", "client_address")),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("details", sa.JSON()),
    *(sa.column(name, sa.String()) for name in ("chain", "prev_hash", "hash")),
    sa.column("seq", sa.BigInteger()),
)


def _link_existing_rows() -> None:
    """Rows written before this migration join their chains in the order they were made."""
    heads: dict[str, tuple[int, str]] = {}
    for row in _existing_rows():
        chain = row["tenant_id"] or "platform"
        seq, prev = heads.get(chain, (0, GENESIS))
        row.update(chain=chain, seq=seq + 1, prev_hash=prev)
        row["hash"] = content_hash(row)
        heads[chain] = (row["seq"], row["hash"])
        op.execute(
            _TABLE.update()
            .where(_TABLE.c.id == row["id"])
            .values({name: row[name] for name in CHAIN_COLUMNS})
        )
    if heads:
        log.info("linked the audit trail into %d hash chains", len(heads))


def _existing_rows() -> Iterator[dict[str, Any]]:
    query = sa.select(_TABLE).order_by(_TABLE.c.created_at, _TABLE.c.id)
    for found in op.get_bind().execute(query).mappings().all():
        row = dict(found)
        created = row["created_at"]
        row["created_at"] = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        row["details"] = row["details"] or {}
        yield row
