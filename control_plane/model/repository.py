from __future__ import annotations

from collections.abc import Sequence

from control_plane.kit.repository import RepositoryBase
from control_plane.models import Model, ModelAlias, ModelVersion


class ModelRepository(RepositoryBase[Model]):
    model = Model

    async def by_name(self, name: str) -> Model | None:
        return await self.first(Model.name == name)

    async def take_version_number(self, model_id: str) -> int | None:
        """The next version number, reserved atomically (the row stays locked until the
        transaction ends, so concurrent uploads get distinct, increasing numbers)."""
        await self.update_where(Model.id == model_id, next_version=Model.next_version + 1)
        taken = await self.value(Model.next_version, Model.id == model_id)
        return None if taken is None else int(taken) - 1  # None: the model is gone


class VersionRepository(RepositoryBase[ModelVersion]):
    model = ModelVersion

    async def number(self, model_id: str, version: int) -> ModelVersion | None:
        return await self.first(ModelVersion.model_id == model_id, ModelVersion.version == version)

    async def of_model(self, model_id: str) -> Sequence[ModelVersion]:
        return await self.all(ModelVersion.model_id == model_id)


class AliasRepository(RepositoryBase[ModelAlias]):
    model = ModelAlias

    async def of_model(self, model_id: str) -> Sequence[ModelAlias]:
        return await self.all(ModelAlias.model_id == model_id)

    async def named(self, model_id: str, alias: str) -> ModelAlias | None:
        return await self.first(ModelAlias.model_id == model_id, ModelAlias.alias == alias)
