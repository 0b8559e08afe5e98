"""Datasets: CSV or Parquet tables, validated on upload and kept in the artifact store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from cluster.sandbox import Sandbox
from control_plane.artifact.accounting import purge
from control_plane.artifact.blobs import Storage, receive
from control_plane.artifact.store import ArtifactStore, StoredBlob
from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.config import Settings
from control_plane.dataset.inspect import TableShape, UnreadableDataset, format_of
from control_plane.dataset.repository import DatasetRepository
from control_plane.dataset.sandboxed import inspect_sandboxed
from control_plane.dataset.schemas import DatasetForm
from control_plane.db import Database
from control_plane.errors import Conflict, NotFound, ValidationFailed
from control_plane.event.service import emit
from control_plane.kit.hooks import after_commit
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.kit.slots import FairSlots
from control_plane.models import Dataset


@dataclass(frozen=True, slots=True)
class TableReader:
    """How a tenant's table is read through: in the sandbox, within the probe limits,
    one of the process's probe slots at a time."""

    sandbox: Sandbox
    slots: FairSlots
    settings: Settings


async def create(
    session: AsyncSession,
    tenant_id: str,
    request: Request,
    *,
    actor: Principal,
    storage: Storage,
    reader: TableReader,
) -> Dataset:
    """Store an uploaded table once it has been read through and described."""
    async with receive(session, tenant_id, request, storage=storage) as form:
        if form.stored is None:
            raise ValidationFailed("the form has no 'file' part", extra={"field": "file"})
        fields = DatasetForm.parse(
            {**form.fields, "format": format_of(form.filename, form.fields.get("format"))}
        )
        repo = DatasetRepository(session, tenant_id)
        if await repo.first(Dataset.name == fields.name) is not None:
            raise Conflict(
                f"a dataset named '{fields.name}' already exists", extra={"field": "name"}
            )
        shape = await _describe(tenant_id, form.stored, fields.format, storage, reader)
        dataset = await _add(session, tenant_id, form.stored, fields, shape, actor=actor)
    record(
        session,
        actor=actor,
        action="dataset.create",
        tenant_id=tenant_id,
        target=("dataset", dataset.id),
        details={"name": dataset.name, "rows": dataset.rows, "sha256": dataset.sha256},
    )
    emit(
        session,
        tenant_id=tenant_id,
        type="dataset.created",
        data={"id": dataset.id, "name": dataset.name, "rows": dataset.rows},
    )
    return dataset


async def _add(
    session: AsyncSession,
    tenant_id: str,
    blob: StoredBlob,
    fields: DatasetForm,
    shape: TableShape,
    *,
    actor: Principal,
) -> Dataset:
    dataset = DatasetRepository(session, tenant_id).add(
        Dataset(
            id=new_id("dset"),
            tenant_id=tenant_id,
            name=fields.name,
            format=fields.format,
            sha256=blob.sha256,
            size_bytes=blob.size_bytes,
            rows=shape.rows,
            columns=shape.columns,
            created_by=actor.user_id,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a dataset named '{fields.name}' already exists") from None
    return dataset


async def _describe(
    tenant_id: str, blob: StoredBlob, fmt: str, storage: Storage, reader: TableReader
) -> TableShape:
    key = await storage.keys.for_tenant(tenant_id)
    settings = reader.settings

    def read_through() -> TableShape:
        scratch = settings.home_dir / "tmp"
        with storage.store.decrypted(tenant_id, blob.sha256, key, scratch=scratch) as path:
            return inspect_sandboxed(
                reader.sandbox,
                path,
                fmt,
                memory_mb=settings.probe_memory_mb,
                timeout_s=settings.probe_timeout_seconds,
            )

    try:
        async with reader.slots.slot(tenant_id):
            return await anyio.to_thread.run_sync(read_through)
    except UnreadableDataset as exc:
        raise ValidationFailed(str(exc), extra={"field": "file"}) from None


async def get(session: AsyncSession, tenant_id: str, dataset_id: str) -> Dataset:
    dataset = await DatasetRepository(session, tenant_id).get(dataset_id)
    if dataset is None:
        raise NotFound("dataset not found")
    return dataset


async def list_page(
    session: AsyncSession, tenant_id: str, params: PageParams
) -> tuple[Sequence[Dataset], str | None]:
    return await DatasetRepository(session, tenant_id).page(params)


async def delete(
    session: AsyncSession,
    tenant_id: str,
    dataset_id: str,
    *,
    actor: Principal,
    db: Database,
    store: ArtifactStore,
) -> None:
    """Delete a dataset; its blob is purged once that commits."""
    dataset = await get(session, tenant_id, dataset_id)
    await DatasetRepository(session, dataset.tenant_id).delete(dataset)
    record(
        session,
        actor=actor,
        action="dataset.delete",
        tenant_id=dataset.tenant_id,
        target=("dataset", dataset.id),
        details={"name": dataset.name},
    )
    shas = [dataset.sha256]
    after_commit(session, lambda: purge(db, store, dataset.tenant_id, shas))
