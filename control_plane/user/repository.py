from control_plane.kit.repository import TenantRepository
from control_plane.models import User


class UserRepository(TenantRepository[User]):
    model = User

    async def by_email(self, email: str) -> User | None:
        return await self.first(User.email == email)
