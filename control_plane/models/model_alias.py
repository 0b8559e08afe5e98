from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.kit.clock import utcnow
from control_plane.models.base import Entity, TenantOwned


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
