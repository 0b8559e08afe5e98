"""What a tenant keeps in the artifact store, and which rows use a blob.

Failed versions keep their row (it says why they failed) but not their blob.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.dataset.repository import DatasetRepository
from control_plane.db import Database
from control_plane.model.repository import VersionRepository
from control_plane.models import Dataset, ModelVersion

if TYPE_CHECKING:  # quotas count stored bytes without loading the store (and pyarrow)
    from control_plane.artifact.store import ArtifactStore

log = logging.getLogger(__name__)
KEPT = ModelVersion.status != "failed"


async def stored_bytes(session: AsyncSession, tenant_id: str) -> int:
    """What the tenant keeps in the store: every version and dataset counts in full."""
    versions = await VersionRepository(session, tenant_id).sum_of(ModelVersion.size_bytes, KEPT)
    datasets = await DatasetRepository(session, tenant_id).sum_of(Dataset.size_bytes)
    return versions + datasets


async def references(session: AsyncSession, tenant_id: str, sha256: str) -> int:
    versions = await VersionRepository(session, tenant_id).count(
        ModelVersion.sha256 == sha256, KEPT
    )
    datasets = await DatasetRepository(session, tenant_id).count(Dataset.sha256 == sha256)
    return versions + datasets


async def purge(db: Database, store: ArtifactStore, tenant_id: str, shas: Iterable[str]) -> None:
    """Delete the blobs that no committed row (but failed versions) refers to any more."""
    for sha256 in set(shas):
        async with db.sessionmaker() as session:
            if await references(session, tenant_id, sha256):
                continue
        try:
            await anyio.to_thread.run_sync(store.delete, tenant_id, sha256)
        except OSError:  # the store is unreachable: logged, the blob stays (no data lost)
            log.exception("could not purge blob %s of tenant %s", sha256, tenant_id)
