from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.kit.clock import utcnow
from control_plane.models.base import Entity, TenantOwned


class Model(Entity, TenantOwned):
    """A named model of a tenant; its versions hold the artifacts."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    framework: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(40))
    # the number the next version gets: versions are never renumbered or reused
    next_version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


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


class ModelAlias(Entity, TenantOwned):
    """A movable name (``champion``, ``challenger``, …) for one version of a model."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]  # the number of ``version_id``, kept beside it for listings
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dataset(Entity, TenantOwned):
    """A validated CSV or Parquet table kept in the artifact store."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_datasets_blob", "tenant_id", "sha256"),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(10))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(40))


class Deployment(Entity, TenantOwned):
    """A model served over HTTP, as its tenant wants it; the reconciler makes Ray agree.

    ``generation`` counts the changes a user made; the reconciler records in
    ``observed_generation`` the one Ray was last seen running, so ``updating`` is truthful.
    """

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    mode: Mapped[str] = mapped_column(String(20))
    # [{"version": int | None, "alias": str | None, "weight": int}]
    traffic: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON)
    autoscaling: Mapped[dict[str, Any]] = mapped_column(JSON)
    batching: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_queued_requests: Mapped[int]
    # each prediction's deadline (the plan caps it); rows made before it existed: 30 s
    timeout_ms: Mapped[int] = mapped_column(default=30_000, server_default="30000")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(default=1)
    observed_generation: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
