"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from control_plane.migrate import head_revision, upgrade
from control_plane.models import Base


def test_migrations_match_the_models(tmp_path: Path) -> None:
    upgrade(f"sqlite+aiosqlite:///{tmp_path}/schema.db")
    engine = create_engine(f"sqlite:///{tmp_path}/schema.db")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == head_revision()
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
