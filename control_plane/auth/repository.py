"""Refresh tokens: reached only by their hash or family, never listed per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.models import RefreshToken


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, token: RefreshToken) -> None:
        self.session.add(token)

    async def by_hash(self, token_hash: str) -> RefreshToken | None:
        stmt = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        return (await self.session.scalars(stmt)).first()

    async def mark_used(self, token_id: str, when: datetime) -> bool:
        """Spend a token; False if another request spent it first."""
        stmt = (
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=when)
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0)) == 1

    async def revoke_family(self, family_id: str, when: datetime) -> None:
        await self._revoke(RefreshToken.family_id == family_id, when)

    async def revoke_all_of_user(self, user_id: str, when: datetime) -> None:
        await self._revoke(RefreshToken.user_id == user_id, when)

    async def _revoke(self, where: ColumnElement[bool], when: datetime) -> None:
        stmt = (
            update(RefreshToken)
            .where(where, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        await self.session.execute(stmt)
