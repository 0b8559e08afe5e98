"""Datasets: CSV or Parquet tables, validated on upload and kept in the artifact store."""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from control_plane.artifact.accounting import purge
from control_plane.artifact.blobs import receive
from control_plane.artifact.store import StoredBlob
from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.dataset.inspect import TableShape, UnreadableDataset, format_of
from control_plane.dataset.repository import DatasetRepository
from control_plane.dataset.sandboxed import inspect_sandboxed
from control_plane.dataset.schemas import DatasetForm
from control_plane.db import after_commit
from control_plane.errors import Conflict, NotFound, ValidationFailed
from control_plane.event.service import emit
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.models import Dataset
from control_plane.services import Services
from control_plane.tenant.service import own_tenant


async def create(
    services: Services, session: AsyncSession, principal: Principal, request: Request
) -> Dataset:
    """Store an uploaded table once it has been read through and described."""
    tenant_id = own_tenant(principal, "datasets")
    services.require_sandbox()
    async with receive(services, session, tenant_id, request) as form:
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
        shape = await _describe(services, tenant_id, form.stored, fields.format)
        dataset = repo.add(
            Dataset(
                id=new_id("dset"),
                tenant_id=tenant_id,
                name=fields.name,
                format=fields.format,
                sha256=form.stored.sha256,
                size_bytes=form.stored.size_bytes,
                rows=shape.rows,
                columns=shape.columns,
                created_by=principal.user_id,
            )
        )
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"a dataset named '{fields.name}' already exists") from None
    record(
        session,
        actor=principal,
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


async def _describe(services: Services, tenant_id: str, blob: StoredBlob, fmt: str) -> TableShape:
    key = await services.data_keys.for_tenant(tenant_id)

    def read_through() -> TableShape:
        scratch = services.settings.home_dir / "tmp"
        with services.artifacts.decrypted(tenant_id, blob.sha256, key, scratch=scratch) as path:
            return inspect_sandboxed(
                services.sandbox,
                path,
                fmt,
                memory_mb=services.settings.probe_memory_mb,
                timeout_s=services.settings.probe_timeout_seconds,
            )

    try:
        async with services.probe_slots.slot(tenant_id):
            return await anyio.to_thread.run_sync(read_through)
    except UnreadableDataset as exc:
        raise ValidationFailed(str(exc), extra={"field": "file"}) from None


async def get(session: AsyncSession, principal: Principal, dataset_id: str) -> Dataset:
    dataset = await DatasetRepository(session, own_tenant(principal, "datasets")).get(dataset_id)
    if dataset is None:
        raise NotFound("dataset not found")
    return dataset


async def list_page(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[Sequence[Dataset], str | None]:
    return await DatasetRepository(session, own_tenant(principal, "datasets")).page(params)


async def delete(
    services: Services, session: AsyncSession, principal: Principal, dataset_id: str
) -> None:
    """Delete a dataset; its blob is purged once that commits."""
    dataset = await get(session, principal, dataset_id)
    await DatasetRepository(session, dataset.tenant_id).delete(dataset)
    record(
        session,
        actor=principal,
        action="dataset.delete",
        tenant_id=dataset.tenant_id,
        target=("dataset", dataset.id),
        details={"name": dataset.name},
    )
    shas = [dataset.sha256]
    after_commit(session, lambda: purge(services.db, services.artifacts, dataset.tenant_id, shas))
