"""Tenants' uploads into the artifact store, held to their plan, and never left orphaned.

A blob is shared by every row of the tenant with the same content (model versions and
datasets are content-addressed), so it is purged only once no committed row refers to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from control_plane.artifact.accounting import purge, stored_bytes
from control_plane.artifact.store import StoredBlob
from control_plane.db import after_rollback
from control_plane.errors import PayloadTooLarge, StorageQuotaExceeded
from control_plane.kit.uploads import Form, read_form
from control_plane.plan.catalog import Limit
from control_plane.services import Services

MB, GB = 1_000_000, 1_000_000_000


@dataclass(frozen=True)
class _Allowance:
    max_bytes: int
    too_large: Exception


async def _allowance(services: Services, session: AsyncSession, tenant_id: str) -> _Allowance:
    limits = await services.quotas.limits(tenant_id)
    upload_mb, storage_gb = limits.get(Limit.MAX_UPLOAD_MB), limits.get(Limit.STORAGE_GB)
    per_upload = int(upload_mb * MB) if upload_mb is not None else 2**62
    if storage_gb is None:
        return _Allowance(per_upload, PayloadTooLarge(f"uploads are limited to {upload_mb:g} MB"))
    left = int(storage_gb * GB) - await stored_bytes(session, tenant_id)
    quota = StorageQuotaExceeded(
        f"the plan's {storage_gb:g} GB of storage would be exceeded"
        f" ({max(left, 0)} bytes left); delete unused versions or datasets"
    )
    if left <= 0:
        raise quota
    if left < per_upload:
        return _Allowance(left, quota)
    return _Allowance(per_upload, PayloadTooLarge(f"uploads are limited to {upload_mb:g} MB"))


@asynccontextmanager
async def receive(
    services: Services, session: AsyncSession, tenant_id: str, request: Request
) -> AsyncIterator[Form[StoredBlob]]:
    """Stream the form's ``file`` part into the tenant's store within its limits. The body
    of the ``with`` records the rows that refer to the blob; if it fails, or the request's
    transaction does not commit, the blob is purged again (unless another row uses it)."""
    allowance = await _allowance(services, session, tenant_id)
    await session.commit()  # hold no transaction open while the body streams in
    data_key = await services.data_keys.for_tenant(tenant_id)

    async def sink(chunks: AsyncIterator[bytes]) -> StoredBlob:
        return await services.artifacts.put(
            tenant_id,
            data_key,
            chunks,
            max_bytes=allowance.max_bytes,
            too_large=allowance.too_large,
        )

    form = Form[StoredBlob]()
    try:
        await read_form(request, form, file_field="file", sink=sink)
        yield form
    except BaseException:
        if form.stored is not None:
            await purge(services.db, services.artifacts, tenant_id, [form.stored.sha256])
        raise
    if form.stored is not None:
        shas = [form.stored.sha256]
        after_rollback(session, lambda: purge(services.db, services.artifacts, tenant_id, shas))
