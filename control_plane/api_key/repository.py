from collections.abc import Sequence
from datetime import datetime

from control_plane.kit.repository import RepositoryBase
from control_plane.models import ApiKey


class ApiKeyRepository(RepositoryBase[ApiKey]):
    model = ApiKey

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        return await self.first(ApiKey.prefix == prefix)

    async def by_prefixes(self, prefixes: Sequence[str]) -> dict[str, ApiKey]:
        """Many keys in one query (the authenticator batches its lookups)."""
        rows = await self.all(ApiKey.prefix.in_(prefixes))
        return {row.prefix: row for row in rows}

    async def mark_used(self, used: dict[str, datetime]) -> None:
        for key_id, when in used.items():
            await self.update_where(ApiKey.id == key_id, last_used_at=when)

    async def revoke_all_of_user(self, user_id: str, when: datetime) -> None:
        await self.update_where(
            (ApiKey.user_id == user_id) & ApiKey.revoked_at.is_(None), revoked_at=when
        )

    async def revoke_descendants(self, key_id: str, when: datetime) -> None:
        """Revoke every key made by this one, and by those, and so on."""
        parents = [key_id]
        while parents:
            children = [row.id for row in await self.all(ApiKey.parent_id.in_(parents))]
            if children:
                await self.update_where(
                    ApiKey.id.in_(children) & ApiKey.revoked_at.is_(None), revoked_at=when
                )
            parents = children
