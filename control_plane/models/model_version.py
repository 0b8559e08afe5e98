from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.models.base import Entity, TenantOwned


class ModelVersion(Entity, TenantOwned):
    """One uploaded artifact of a model: ``validating`` until the sandboxed probe has
    loaded it and run a prediction, then ``ready`` or ``failed`` (with ``error``)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        Index("ix_model_versions_blob", "tenant_id", "sha256"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int]
    format: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="validating", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    # as given in the upload form; replaced by what the probe read from the artifact
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(40))
    # a probe's lease: another process takes the version over once it has expired
    probe_started_at: Mapped[datetime | None]
    validated_at: Mapped[datetime | None]
