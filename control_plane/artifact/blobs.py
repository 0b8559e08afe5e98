"""Tenants' uploads into the artifact store, held to their plan, and never left orphaned.

A blob is shared by every row of the tenant with the same content (model versions and
datasets are content-addressed), so it is purged only once no committed row refers to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from control_plane.artifact.accounting import purge, stored_bytes
from control_plane.artifact.keys import DataKeys
from control_plane.artifact.store import ArtifactStore, StoredBlob
from control_plane.db import Database
from control_plane.errors import PayloadTooLarge, StorageQuotaExceeded
from control_plane.kit.hooks import after_commit, after_rollback
from control_plane.kit.uploads import Form, read_form
from control_plane.plan.catalog import Limit
from control_plane.quota.reservation import Reservation, reservation
from control_plane.quota.service import Quotas

MB, GB = 1_000_000, 1_000_000_000
AHEAD = 8 * MB  # an upload reserves storage this far ahead of its bytes while it fits


@dataclass(frozen=True, slots=True)
class Storage:
    """What an upload goes through: the tenant's plan (``quotas``), its data key, the
    store, and the database that says which rows still use a blob."""

    db: Database
    store: ArtifactStore
    keys: DataKeys
    quotas: Quotas

    async def purge(self, tenant_id: str, shas: list[str]) -> None:
        """Delete those blobs that no committed row refers to any more."""
        await purge(self.db, self.store, tenant_id, shas)


@dataclass(frozen=True)
class _Allowance:
    max_bytes: int
    too_large: Exception
    storage: Reservation
    refused: Callable[[], Exception]


async def _allowance(storage: Storage, tenant_id: str) -> _Allowance:
    limits = await storage.quotas.limits(tenant_id)
    upload_mb, storage_gb = limits.get(Limit.MAX_UPLOAD_MB), limits.get(Limit.STORAGE_GB)
    per_upload = int(upload_mb * MB) if upload_mb is not None else 2**62

    async def stored() -> int:
        async with storage.db.sessionmaker() as session:
            return await stored_bytes(session, tenant_id)

    held = reservation(
        storage.quotas.backend,
        tenant_id,
        Limit.STORAGE_GB.value,
        cap=None if storage_gb is None else int(storage_gb * GB),
        base=stored,
    )

    def refused() -> Exception:
        return StorageQuotaExceeded(
            f"the plan's storage_gb ({storage_gb:g} GB) would be exceeded"
            f" ({held.left} bytes left); delete unused versions or datasets",
            extra={"quota": Limit.STORAGE_GB.value},
        )

    too_large = PayloadTooLarge(
        f"uploads are limited to {upload_mb:g} MB" if upload_mb is not None else None
    )
    return _Allowance(per_upload, too_large, held, refused)


async def _within(allowance: _Allowance, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, each only once the storage it takes is reserved."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if not await allowance.storage.cover(size, ahead=AHEAD):
            raise allowance.refused()
        yield chunk


async def _reserve_declared(allowance: _Allowance, request: Request) -> bool:
    """Reserve the body's declared size, so parallel uploads are decided before they
    stream; if that does not fit, the upload may still fit byte by byte. False: nothing
    is left at all (refused before the body is read)."""
    length = request.headers.get("content-length", "")
    declared = min(int(length), allowance.max_bytes) if length.isdigit() else 0
    if declared and await allowance.storage.hold(declared):
        return True
    return await allowance.storage.hold(1)


@asynccontextmanager
async def receive(
    session: AsyncSession, tenant_id: str, request: Request, *, storage: Storage
) -> AsyncIterator[Form[StoredBlob]]:
    """Stream the form's ``file`` part into the tenant's store within its limits. The body
    of the ``with`` records the rows that refer to the blob; if it fails, or the request's
    transaction does not commit, the blob is purged again (unless another row uses it).

    Storage is reserved before the bytes arrive (the declared size, then byte by byte
    beyond it), so parallel uploads cannot together pass ``storage_gb``; the reservation
    shrinks to the stored size, and is given back once the transaction has committed
    (the rows count now) or rolled back; it lapses within a minute if the process dies."""
    allowance = await _allowance(storage, tenant_id)
    await session.commit()  # hold no transaction open while the body streams in
    data_key = await storage.keys.for_tenant(tenant_id)
    if not await _reserve_declared(allowance, request):
        raise allowance.refused()
    form = Form[StoredBlob]()
    try:
        sink = _sink(storage, tenant_id, data_key, allowance)
        await read_form(request, form, file_field="file", sink=sink)
        yield form
    except BaseException:
        if form.stored is not None:
            await storage.purge(tenant_id, [form.stored.sha256])
        await allowance.storage.release()
        raise
    _settle(session, storage, tenant_id, form, allowance)


def _sink(
    storage: Storage, tenant_id: str, data_key: bytes, allowance: _Allowance
) -> Callable[[AsyncIterator[bytes]], Awaitable[StoredBlob]]:
    """Where the file part streams: the store, each chunk once its storage is reserved."""

    async def sink(chunks: AsyncIterator[bytes]) -> StoredBlob:
        stored = await storage.store.put(
            tenant_id,
            data_key,
            _within(allowance, chunks),
            max_bytes=allowance.max_bytes,
            too_large=allowance.too_large,
        )
        await allowance.storage.hold(stored.size_bytes)  # what it takes, no more
        return stored

    return sink


def _settle(
    session: AsyncSession,
    storage: Storage,
    tenant_id: str,
    form: Form[StoredBlob],
    allowance: _Allowance,
) -> None:
    """Once the transaction ends the rows count instead of the reservation; a rollback
    also takes the blob back."""
    after_commit(session, allowance.storage.release)
    after_rollback(session, allowance.storage.release)
    if form.stored is not None:
        shas = [form.stored.sha256]
        after_rollback(session, lambda: storage.purge(tenant_id, shas))
