"""The one place that builds queries on tenant-owned tables.

A repository is bound to a scope: a tenant id (every query filtered to it) or
``PLATFORM`` (no filter; only platform-admin code paths and system tasks use it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from control_plane.kit.pagination import PageParams, encode_cursor
from control_plane.models.base import Entity

M = TypeVar("M", bound=Entity)


class _Platform:
    def __repr__(self) -> str:
        return "PLATFORM"


PLATFORM: Final = _Platform()
Scope = str | _Platform


class RepositoryBase(Generic[M]):
    """Base of every repository over a tenant-owned table."""

    model: ClassVar[type[Entity]]
    tenant_field: ClassVar[str] = "tenant_id"

    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        self.session = session
        self.scope = scope

    def _tenant_column(self) -> InstrumentedAttribute[Any]:
        column: InstrumentedAttribute[Any] = getattr(self.model, self.tenant_field)
        return column

    def _scoped(self) -> list[ColumnElement[bool]]:
        if isinstance(self.scope, _Platform):
            return []
        return [self._tenant_column() == self.scope]

    def select(self, *where: ColumnElement[bool]) -> Select[Any]:
        return select(self.model).where(*self._scoped(), *where)

    async def _scalars(self, stmt: Select[Any]) -> Sequence[M]:
        rows: Sequence[M] = (await self.session.scalars(stmt)).all()
        return rows

    async def first(self, *where: ColumnElement[bool]) -> M | None:
        rows = await self._scalars(self.select(*where).limit(1))
        return rows[0] if rows else None

    async def get(self, object_id: str) -> M | None:
        return await self.first(self.model.id == object_id)

    async def all(self, *where: ColumnElement[bool], limit: int | None = None) -> Sequence[M]:
        return await self._scalars(self.select(*where).order_by(self.model.id).limit(limit))

    async def count(self, *where: ColumnElement[bool]) -> int:
        stmt = select(func.count()).select_from(self.select(*where).subquery())
        return int(await self.session.scalar(stmt) or 0)

    async def sum_of(self, column: InstrumentedAttribute[Any], *where: ColumnElement[bool]) -> int:
        """The sum of ``column`` over the matching rows in scope (0 when none)."""
        stmt = select(func.coalesce(func.sum(column), 0)).where(*self._scoped(), *where)
        return int(await self.session.scalar(stmt) or 0)

    async def value(
        self, column: InstrumentedAttribute[Any] | ColumnElement[Any], *where: ColumnElement[bool]
    ) -> Any:
        """One column (or aggregate) of the matching rows in scope (None when none)."""
        return await self.session.scalar(select(column).where(*self._scoped(), *where).limit(1))

    async def max_by(
        self,
        key: InstrumentedAttribute[Any],
        value: InstrumentedAttribute[Any],
        *where: ColumnElement[bool],
    ) -> dict[Any, Any]:
        """The largest ``value`` per ``key`` over the matching rows in scope."""
        stmt = select(key, func.max(value)).where(*self._scoped(), *where).group_by(key)
        return {row[0]: row[1] for row in (await self.session.execute(stmt)).all()}

    async def page(
        self, params: PageParams, *where: ColumnElement[bool], newest_first: bool = False
    ) -> tuple[Sequence[M], str | None]:
        stmt = self.select(*where)
        column = self.model.id
        if params.after_id is not None:
            stmt = stmt.where(
                column < params.after_id if newest_first else column > params.after_id
            )
        stmt = stmt.order_by(column.desc() if newest_first else column).limit(params.limit + 1)
        rows = await self._scalars(stmt)
        more = len(rows) > params.limit
        rows = rows[: params.limit]
        return rows, (encode_cursor(rows[-1].id) if more and rows else None)

    def add(self, obj: M) -> M:
        if not isinstance(self.scope, _Platform) and getattr(obj, self.tenant_field) != self.scope:
            raise ValueError("object outside the repository's tenant")
        self.session.add(obj)
        return obj

    async def delete(self, obj: M) -> None:
        await self.session.delete(obj)

    async def insert_new(self, rows: list[dict[str, Any]], *, unique: list[str]) -> None:
        """Insert rows, silently skipping those that collide on the ``unique`` columns."""
        if not isinstance(self.scope, _Platform):
            assert all(row[self.tenant_field] == self.scope for row in rows)
        bind = self.session.bind
        builder = (
            pg_insert if bind is not None and bind.dialect.name == "postgresql" else sqlite_insert
        )
        stmt = builder(self.model).values(rows).on_conflict_do_nothing(index_elements=unique)
        await self.session.execute(stmt)

    async def update_where(self, where: ColumnElement[bool], **values: Any) -> int:
        """Update matching rows in scope; return how many matched."""
        stmt = update(self.model).where(*self._scoped(), where).values(**values)
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0))
