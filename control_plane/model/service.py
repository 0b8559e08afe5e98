"""Models and their aliases: names unique per tenant, aliases that move between versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.artifact.accounting import purge
from control_plane.artifact.store import ArtifactStore
from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.db import Database
from control_plane.deployment.repository import DeploymentRepository
from control_plane.deployment.targets import uses_alias, uses_version
from control_plane.errors import Conflict, NotFound
from control_plane.event.service import emit
from control_plane.kit.hooks import after_commit
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.model.repository import AliasRepository, ModelRepository, VersionRepository
from control_plane.model.schemas import AliasRead, ModelCreate, ModelRead, ModelUpdate
from control_plane.models import Model, ModelAlias, ModelVersion

if TYPE_CHECKING:
    from control_plane.deployment.reconciler import Reconciler


async def create(
    session: AsyncSession, tenant_id: str, data: ModelCreate, *, actor: Principal
) -> Model:
    repo = ModelRepository(session, tenant_id)
    await _name_free(repo, data.name)
    model = repo.add(
        Model(id=new_id("mdl"), tenant_id=tenant_id, created_by=actor.user_id, **data.model_dump())
    )
    await _flush_unique(session, data.name)
    record(
        session,
        actor=actor,
        action="model.create",
        tenant_id=tenant_id,
        target=("model", model.id),
        details={"name": model.name},
    )
    emit(
        session,
        tenant_id=tenant_id,
        type="model.created",
        data={"id": model.id, "name": model.name},
    )
    return model


async def get(session: AsyncSession, tenant_id: str, model_id: str) -> Model:
    model = await ModelRepository(session, tenant_id).get(model_id)
    if model is None:
        raise NotFound("model not found")
    return model


async def list_page(
    session: AsyncSession, tenant_id: str, params: PageParams
) -> tuple[Sequence[Model], str | None]:
    return await ModelRepository(session, tenant_id).page(params)


async def update(
    session: AsyncSession, tenant_id: str, model_id: str, data: ModelUpdate, *, actor: Principal
) -> Model:
    model = await get(session, tenant_id, model_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "name" in changes and changes["name"] != model.name:
        await _name_free(ModelRepository(session, model.tenant_id), changes["name"])
    for field, value in changes.items():
        setattr(model, field, value)
    await _flush_unique(session, model.name)
    record(
        session,
        actor=actor,
        action="model.update",
        tenant_id=model.tenant_id,
        target=("model", model.id),
        details=changes,
    )
    return model


async def delete(
    session: AsyncSession,
    tenant_id: str,
    model_id: str,
    *,
    actor: Principal,
    db: Database,
    store: ArtifactStore,
) -> None:
    """Delete a model with its versions and aliases; blobs are purged once that commits."""
    model = await get(session, tenant_id, model_id)
    versions = await VersionRepository(session, model.tenant_id).of_model(model.id)
    await refuse_if_deployed(session, model.tenant_id, model.id)
    shas = [v.sha256 for v in versions]
    await ModelRepository(session, model.tenant_id).delete(model)  # versions, aliases cascade
    record(
        session,
        actor=actor,
        action="model.delete",
        tenant_id=model.tenant_id,
        target=("model", model.id),
        details={"name": model.name, "versions": len(versions)},
    )
    emit(
        session,
        tenant_id=model.tenant_id,
        type="model.deleted",
        data={"id": model.id, "name": model.name},
    )
    after_commit(session, lambda: purge(db, store, model.tenant_id, shas))


async def refuse_if_deployed(
    session: AsyncSession, tenant_id: str, model_id: str, numbers: set[int] | None = None
) -> None:
    """409 when a deployment serves the model (``numbers`` None) or one of those versions
    by number (versions an alias names are kept by the alias)."""
    deployments = await DeploymentRepository(session, tenant_id).of_model(model_id)
    using = [d.name for d in deployments if numbers is None or uses_version(d.traffic, numbers)]
    if using:
        raise Conflict(
            f"still served by deployment(s) {', '.join(using)}; delete or change them first"
        )


async def read(session: AsyncSession, models: Sequence[Model]) -> list[ModelRead]:
    """Models as the API shows them, with their aliases (one query for the whole page)."""
    if not models:
        return []
    tenant_id = models[0].tenant_id
    ids = [m.id for m in models]
    aliases = await AliasRepository(session, tenant_id).all(ModelAlias.model_id.in_(ids))
    latest = await VersionRepository(session, tenant_id).max_by(
        ModelVersion.model_id, ModelVersion.version, ModelVersion.model_id.in_(ids)
    )
    by_model: dict[str, dict[str, int]] = {}
    for alias in aliases:
        by_model.setdefault(alias.model_id, {})[alias.alias] = alias.version
    return [
        ModelRead.model_validate(
            {
                **{f: getattr(m, f) for f in ModelRead.model_fields if hasattr(m, f)},
                "latest_version": latest.get(m.id),
                "aliases": by_model.get(m.id, {}),
            }
        )
        for m in models
    ]


async def set_alias(
    session: AsyncSession,
    tenant_id: str,
    model_id: str,
    alias: str,
    number: int,
    *,
    actor: Principal,
    reconciler: Reconciler,
) -> AliasRead:
    """Point ``alias`` at a ready version (creating the alias or moving it)."""
    model = await get(session, tenant_id, model_id)
    version = await _ready_version(session, model, number)
    row = await AliasRepository(session, model.tenant_id).named(model.id, alias)
    previous = row.version if row else None
    if row is None:
        row = _new_alias(session, model, alias, version)
    row.version_id, row.version = version.id, number
    await session.flush()
    record(
        session,
        actor=actor,
        action="model.alias.set",
        tenant_id=model.tenant_id,
        target=("model", model.id),
        details={"alias": alias, "version": number, "previous": previous},
    )
    after_commit(session, reconciler.wake)  # deployments that serve the alias roll
    return AliasRead(model_id=model.id, alias=alias, version=number)


async def _ready_version(session: AsyncSession, model: Model, number: int) -> ModelVersion:
    version = await VersionRepository(session, model.tenant_id).number(model.id, number)
    if version is None:
        raise NotFound(f"model {model.name} has no version {number}")
    if version.status != "ready":
        raise Conflict(
            f"version {number} is {version.status}; an alias can point only to a ready version"
        )
    return version


def _new_alias(
    session: AsyncSession, model: Model, alias: str, version: ModelVersion
) -> ModelAlias:
    return AliasRepository(session, model.tenant_id).add(
        ModelAlias(
            id=new_id("als"),
            tenant_id=model.tenant_id,
            model_id=model.id,
            alias=alias,
            version_id=version.id,
            version=version.version,
        )
    )


async def delete_alias(
    session: AsyncSession, tenant_id: str, model_id: str, alias: str, *, actor: Principal
) -> None:
    model = await get(session, tenant_id, model_id)
    repo = AliasRepository(session, model.tenant_id)
    row = await repo.named(model.id, alias)
    if row is None:
        raise NotFound(f"model {model.name} has no alias '{alias}'")
    await _alias_unused(session, model, alias)
    await repo.delete(row)
    record(
        session,
        actor=actor,
        action="model.alias.delete",
        tenant_id=model.tenant_id,
        target=("model", model.id),
        details={"alias": alias, "version": row.version},
    )


async def _alias_unused(session: AsyncSession, model: Model, alias: str) -> None:
    deployments = await DeploymentRepository(session, model.tenant_id).of_model(model.id)
    using = [d.name for d in deployments if uses_alias(d.traffic, alias)]
    if using:
        raise Conflict(f"alias '{alias}' is served by deployment(s) {', '.join(using)}")


async def _name_free(repo: ModelRepository, name: str) -> None:
    if await repo.by_name(name) is not None:
        raise Conflict(f"a model named '{name}' already exists", extra={"field": "name"})


async def _flush_unique(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:  # a concurrent request took the name between check and insert
        raise Conflict(f"a model named '{name}' already exists", extra={"field": "name"}) from None
