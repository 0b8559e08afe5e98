from __future__ import annotations

from collections.abc import Sequence

from control_plane.kit.repository import RepositoryBase
from control_plane.models import Deployment


class DeploymentRepository(RepositoryBase[Deployment]):
    model = Deployment

    async def of_model(self, model_id: str) -> Sequence[Deployment]:
        return await self.all(Deployment.model_id == model_id)

    async def by_name(self, name: str) -> Deployment | None:
        return await self.first(Deployment.name == name)
