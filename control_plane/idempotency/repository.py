from __future__ import annotations

from sqlalchemy import ColumnElement, delete

from control_plane.kit.repository import RepositoryBase
from control_plane.models import IdempotencyKey


class IdempotencyRepository(RepositoryBase[IdempotencyKey]):
    model = IdempotencyKey

    async def find(self, scope: str, key: str) -> IdempotencyKey | None:
        return await self.first(IdempotencyKey.scope == scope, IdempotencyKey.key == key)

    async def delete_where(self, *where: ColumnElement[bool]) -> int:
        """Delete matching rows in scope; return how many there were."""
        result = await self.session.execute(delete(self.model).where(*self._scoped(), *where))
        return int(getattr(result, "rowcount", 0))
