"""Routes for Atrium's Serve replicas: the model versions they load, decrypted.

Keys never leave the control plane: a replica asks for a version by id with the
internal token and receives the plaintext over loopback (or the cluster network).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio.to_thread
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from control_plane.deps import ArtifactsDep, DataKeysDep, Internal, SessionDep
from control_plane.errors import Forbidden, NotFound, responses
from control_plane.kit.repository import PLATFORM
from control_plane.model.repository import VersionRepository
from control_plane.model.schemas import VersionSource
from control_plane.models import ModelVersion

router = APIRouter(
    prefix="/internal/v1",
    tags=["internal"],
    dependencies=[Depends(Internal())],
    responses=responses(Forbidden, NotFound),
)


async def _ready_version(session: SessionDep, version_id: str) -> ModelVersion:
    version = await VersionRepository(session, PLATFORM).get(version_id)
    if version is None or version.status != "ready":
        raise NotFound("no such ready model version")
    return version


@router.get("/model-versions/{version_id}", response_model=VersionSource)
async def version_metadata(session: SessionDep, version_id: str) -> VersionSource:
    """What a replica needs to load a version: its tenant, format and signature."""
    return VersionSource.model_validate(await _ready_version(session, version_id))


@router.get("/model-versions/{version_id}/artifact")
async def version_artifact(
    session: SessionDep, version_id: str, keys: DataKeysDep, store: ArtifactsDep
) -> StreamingResponse:
    """The decrypted artifact (verified against its sha256 as it streams)."""
    version = await _ready_version(session, version_id)
    key = await keys.for_tenant(version.tenant_id)
    chunks: Iterator[bytes] = store.read(version.tenant_id, version.sha256, key)

    async def stream() -> AsyncIterator[bytes]:
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                return
            yield chunk

    return StreamingResponse(stream(), media_type="application/octet-stream")
