from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from control_plane.kit.schemas import ReadSchema

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobRead(ReadSchema):
    id: str
    kind: str
    submission_id: str
    status: JobStatus
    entrypoint: str
    message: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    model_version_id: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class ClusterResources(ReadSchema):
    cpus: float
    gpus: int
    memory_mb: int


class ClusterRead(ReadSchema):
    status: Literal["stopped", "starting", "running", "failed"]
    resources: ClusterResources
    dashboard_url: str
    jobs_address: str
    started_at: datetime | None
    idle_stop_at: datetime | None
    error: str | None
