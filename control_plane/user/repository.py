from collections.abc import Sequence

from control_plane.kit.repository import RepositoryBase
from control_plane.models import User


class UserRepository(RepositoryBase[User]):
    model = User

    async def by_email(self, email: str, tenant_id: str | None = None) -> User | None:
        """The account with this email in ``tenant_id``; None: among platform admins.
        Emails are unique per tenant, so the same address may exist in several."""
        where = User.tenant_id.is_(None) if tenant_id is None else User.tenant_id == tenant_id
        return await self.first(User.email == email, where)

    async def with_email(self, email: str, *, limit: int) -> Sequence[User]:
        """Every account in scope with this email, oldest first."""
        return await self.all(User.email == email, limit=limit)
