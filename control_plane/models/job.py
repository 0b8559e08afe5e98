from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.kit.clock import utcnow
from control_plane.models.base import Entity, TenantOwned


class Job(Entity, TenantOwned):
    """Work on the tenant's own Ray cluster: a Ray job submitted with `ray job submit`
    (``kind`` "ray") or a built-in training job. ``submission_id`` is Ray's name for it on
    that cluster; the status poller keeps ``status`` in line with what Ray reports."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "submission_id"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    submission_id: Mapped[str] = mapped_column(String(200))
    # queued -> running -> succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    entrypoint: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version_id: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
