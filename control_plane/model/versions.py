"""Model versions: streamed in, numbered, then validated in a sandbox (``validation``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from control_plane.artifact.accounting import purge
from control_plane.artifact.blobs import Storage, receive
from control_plane.artifact.store import ArtifactStore, StoredBlob
from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.db import Database
from control_plane.errors import Conflict, ModelRejected, NotFound, ValidationFailed
from control_plane.kit.hooks import after_commit
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.model import service as models
from control_plane.model.repository import AliasRepository, ModelRepository, VersionRepository
from control_plane.model.schemas import VersionForm, VersionRead
from control_plane.model.validation import Validator
from control_plane.models import Model, ModelAlias, ModelVersion
from serve_apps.runtime.loaders import SELF_DESCRIBING, UNSAFE


async def upload(
    session: AsyncSession,
    tenant_id: str,
    model_id: str,
    request: Request,
    *,
    actor: Principal,
    wait: bool,
    storage: Storage,
    validator: Validator,
    allow_pickle: bool,
) -> tuple[Model, ModelVersion]:
    """Store the uploaded artifact as the model's next version, ``validating``. With
    ``wait``, validate it before answering: a version that fails is discarded (422)."""
    model = await models.get(session, tenant_id, model_id)
    async with receive(session, model.tenant_id, request, storage=storage) as form:
        if form.stored is None:
            raise ValidationFailed("the form has no 'file' part", extra={"field": "file"})
        fields = VersionForm.parse(form.fields)
        _check(fields, allow_pickle)
        version = await _add(session, model, form.stored, fields, actor=actor)
    record(
        session,
        actor=actor,
        action="model.version.create",
        tenant_id=model.tenant_id,
        target=("model", model.id),
        details={"version": version.version, "format": fields.format, "sha256": version.sha256},
    )
    if not wait:
        after_commit(session, validator.wake)
        return model, version
    await session.commit()
    return model, await _validated(session, model, version, validator)


async def _add(
    session: AsyncSession,
    model: Model,
    blob: StoredBlob,
    fields: VersionForm,
    *,
    actor: Principal,
) -> ModelVersion:
    """The version row for a stored blob, under the model's next number."""
    number = await ModelRepository(session, model.tenant_id).take_version_number(model.id)
    if number is None:
        raise NotFound("the model was deleted while its version was uploading")
    version = VersionRepository(session, model.tenant_id).add(
        ModelVersion(
            id=new_id("mver"),
            tenant_id=model.tenant_id,
            model_id=model.id,
            version=number,
            format=fields.format,
            sha256=blob.sha256,
            size_bytes=blob.size_bytes,
            status="validating",
            signature=fields.signature.model_dump() if fields.signature else None,
            tags=fields.tags,
            created_by=actor.user_id,
        )
    )
    await session.flush()
    return version


async def _validated(
    session: AsyncSession, model: Model, version: ModelVersion, validator: Validator
) -> ModelVersion:
    """The version once validated now; one that fails is deleted (committed) and 422."""
    checked = await validator.validate_now(version.id)
    if checked is None:
        raise NotFound("the version was deleted while it was being validated")
    if checked.status == "failed":
        await VersionRepository(session, model.tenant_id).delete(await session.merge(checked))
        raise ModelRejected(
            f"version {version.version} was not accepted: {checked.error}",
            extra={"field": "file", "format": checked.format},
        )
    return checked


def _check(fields: VersionForm, allow_pickle: bool) -> None:
    if fields.format in UNSAFE and not allow_pickle:
        raise ValidationFailed(
            f"'{fields.format}' files run arbitrary code when loaded and this platform refuses"
            " them; save the model as sklearn-skops, onnx or another safe format",
            extra={"field": "format"},
        )
    if fields.signature is None and fields.format not in SELF_DESCRIBING:
        raise ValidationFailed(
            f"{fields.format} files do not describe their inputs: send a 'signature' field"
            ' such as {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}]}',
            extra={"field": "signature"},
        )


async def get(
    session: AsyncSession, tenant_id: str, model_id: str, number: int
) -> tuple[Model, ModelVersion]:
    model = await models.get(session, tenant_id, model_id)
    version = await VersionRepository(session, model.tenant_id).number(model.id, number)
    if version is None:
        raise NotFound(f"model {model.name} has no version {number}")
    return model, version


async def list_page(
    session: AsyncSession, tenant_id: str, model_id: str, params: PageParams
) -> tuple[Model, Sequence[ModelVersion], str | None]:
    model = await models.get(session, tenant_id, model_id)
    rows, cursor = await VersionRepository(session, model.tenant_id).page(
        params, ModelVersion.model_id == model.id
    )
    return model, rows, cursor


async def delete(
    session: AsyncSession,
    tenant_id: str,
    model_id: str,
    number: int,
    *,
    actor: Principal,
    db: Database,
    store: ArtifactStore,
) -> None:
    """Delete a version no alias or deployment uses; its blob goes once that commits."""
    model, version = await get(session, tenant_id, model_id, number)
    pointing = await AliasRepository(session, model.tenant_id).all(
        ModelAlias.version_id == version.id
    )
    if pointing:
        names = ", ".join(a.alias for a in pointing)
        raise Conflict(f"version {number} is the target of alias(es) {names}; move them first")
    await models.refuse_if_deployed(session, model.tenant_id, model.id, {number})
    await VersionRepository(session, model.tenant_id).delete(version)
    record(
        session,
        actor=actor,
        action="model.version.delete",
        tenant_id=model.tenant_id,
        target=("model", model.id),
        details={"version": number, "sha256": version.sha256},
    )
    shas = [version.sha256]
    after_commit(session, lambda: purge(db, store, model.tenant_id, shas))


async def read(
    session: AsyncSession, model: Model, versions: Sequence[ModelVersion]
) -> list[VersionRead]:
    aliases = await AliasRepository(session, model.tenant_id).of_model(model.id)
    by_version: dict[str, list[str]] = {}
    for alias in aliases:
        by_version.setdefault(alias.version_id, []).append(alias.alias)
    return [_read(model, v, sorted(by_version.get(v.id, []))) for v in versions]


def _read(model: Model, version: ModelVersion, aliases: list[str]) -> VersionRead:
    signature = version.signature or {}
    return VersionRead(
        id=version.id,
        model_id=model.id,
        version=version.version,
        framework=model.framework,
        format=version.format,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        status=version.status,
        error=version.error,
        input_schema=signature.get("inputs"),
        output_schema=signature.get("outputs"),
        signature_inferred=bool(signature.get("inferred", False)),
        tags=version.tags,
        aliases=aliases,
        created_by=version.created_by,
        created_at=version.created_at,
        validated_at=version.validated_at,
    )
