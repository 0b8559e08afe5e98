"""Routes for Atrium's Serve replicas: the model artifacts they load, decrypted.

Keys never leave the control plane: a replica asks for a version by id with the
internal token and receives the plaintext over loopback (or the cluster network).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from control_plane.errors import NotFound
from control_plane.kit.deps import Internal, ServicesDep, SessionDep
from control_plane.kit.repository import PLATFORM
from control_plane.model.repository import VersionRepository
from control_plane.models import ModelVersion

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[Internal()])


async def _ready_version(session: SessionDep, version_id: str) -> ModelVersion:
    version = await VersionRepository(session, PLATFORM).get(version_id)
    if version is None or version.status != "ready":
        raise NotFound("no such ready model version")
    return version


@router.get("/model-versions/{version_id}")
async def version_metadata(session: SessionDep, version_id: str) -> dict[str, Any]:
    """What a replica needs to load a version: its tenant, format and signature."""
    version = await _ready_version(session, version_id)
    return {
        "id": version.id,
        "tenant_id": version.tenant_id,
        "format": version.format,
        "signature": version.signature,
        "sha256": version.sha256,
    }


@router.get("/model-versions/{version_id}/artifact")
async def version_artifact(
    services: ServicesDep, session: SessionDep, version_id: str
) -> StreamingResponse:
    """The decrypted artifact (verified against its sha256 as it streams)."""
    version = await _ready_version(session, version_id)
    key = await services.data_keys.for_tenant(version.tenant_id)
    chunks: Iterator[bytes] = services.artifacts.read(version.tenant_id, version.sha256, key)

    async def stream() -> Any:
        while True:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                return
            yield chunk

    return StreamingResponse(stream(), media_type="application/octet-stream")
