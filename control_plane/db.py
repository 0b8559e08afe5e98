"""Engine, sessions and the one commit-or-rollback per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from control_plane.errors import AtriumError
from control_plane.kit.hooks import run_hooks


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys, WAL and a busy timeout."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (for Alembic)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return url


class Database:
    """Owns the engine and hands out sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def session_scope(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on error, once."""
        async with self.sessionmaker() as session:
            try:
                yield session
            except AtriumError as exc:
                if not exc.persist:
                    await _rollback(session)
                    raise
                await _commit(session)
                raise
            except BaseException:
                await _rollback(session)
                raise
            await _commit(session)


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except BaseException:
        await _rollback(session)
        raise
    session.info.pop("after_rollback", None)
    await run_hooks(session, "after_commit")


async def _rollback(session: AsyncSession) -> None:
    session.info.pop("after_commit", None)
    try:
        await session.rollback()
    finally:
        await run_hooks(session, "after_rollback")
