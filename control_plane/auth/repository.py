"""Refresh tokens: reached only by their hash or family, never listed per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, select, update
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

    async def family_revoked(self, family_id: str) -> bool:
        """Whether a sign-in session was ended (logout, reuse of a spent token, a
        password or MFA change): its access tokens are refused from then on."""
        revoked = exists().where(
            RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None)
        )
        return bool(await self.session.scalar(select(revoked)))

    async def revoke_family(self, family_id: str, when: datetime) -> None:
        await self._revoke(RefreshToken.family_id == family_id, when)

    async def revoke_all_of_user(self, user_id: str, when: datetime) -> None:
        await self._revoke(RefreshToken.user_id == user_id, when)

    async def revoke_other_families(
        self, user_id: str, *, keep: str | None, when: datetime
    ) -> None:
        """End every sign-in session of the user but ``keep`` (the caller's own)."""
        where = RefreshToken.user_id == user_id
        await self._revoke(where & (RefreshToken.family_id != keep) if keep else where, when)

    async def signed_in_at(self, family_id: str) -> datetime | None:
        """When the family's sign-in happened: its first token was issued then."""
        stmt = select(func.min(RefreshToken.created_at)).where(RefreshToken.family_id == family_id)
        first: datetime | None = await self.session.scalar(stmt)
        return first

    async def _revoke(self, where: ColumnElement[bool], when: datetime) -> None:
        stmt = (
            update(RefreshToken)
            .where(where, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=when)
        )
        await self.session.execute(stmt)
