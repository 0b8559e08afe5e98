"""The databases API tests run on: SQLite always, Postgres from ATRIUM_TEST_DATABASE_URL."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from control_plane.migrate import upgrade
from control_plane.models import Base


class TestDatabase:
    """Migrated once per session; emptied (or copied fresh) for every test."""

    __test__ = False

    def url_for(self, tmp_path: Path) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


class SqliteDatabase(TestDatabase):
    def __init__(self, directory: Path) -> None:
        self.template = directory / "template.db"
        upgrade(f"sqlite+aiosqlite:///{self.template}")

    def url_for(self, tmp_path: Path) -> str:
        path = tmp_path / "atrium.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"


class PostgresDatabase(TestDatabase):
    """A database of its own per test session, dropped at the end."""

    def __init__(self, base_url: str) -> None:
        base = make_url(base_url).set(drivername="postgresql+psycopg")
        self._admin = create_engine(base, isolation_level="AUTOCOMMIT")
        self.name = f"atrium_test_{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url: URL = base.set(database=self.name)
        upgrade(self.url.render_as_string(hide_password=False))
        self._engine = create_engine(self.url)
        self._tables = ", ".join(t.name for t in Base.metadata.sorted_tables)

    def url_for(self, tmp_path: Path) -> str:
        with self._engine.begin() as conn:
            # the audit trail refuses TRUNCATE by trigger; a superuser may switch them off
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {self._tables} CASCADE"))
        return self.url.render_as_string(hide_password=False)

    def close(self) -> None:
        self._engine.dispose()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


def postgres_base_url() -> str | None:
    return os.environ.get("ATRIUM_TEST_DATABASE_URL") or None
