"""Work that waits for the request's transaction: after it commits (tell other
processes, start background work) or if it rolls back (undo what was done outside
the database, such as a stored blob). ``Database.session_scope`` runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

AfterCommit = Callable[[], Any]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the request's transaction has committed."""
    session.info.setdefault("after_commit", []).append(callback)


def after_rollback(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` if the request's transaction is rolled back (or fails to commit):
    to undo what was done outside the database, such as a stored blob."""
    session.info.setdefault("after_rollback", []).append(callback)


async def run_hooks(session: AsyncSession, hook: str) -> None:
    for callback in session.info.pop(hook, []):
        result = callback()
        if hasattr(result, "__await__"):
            await result
