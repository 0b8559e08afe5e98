from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.kit.clock import utcnow
from control_plane.models.base import Entity, TenantOwned


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
