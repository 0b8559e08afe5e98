from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.models.base import Entity, TenantOwned


class UsageRecord(Entity, TenantOwned):
    """The append-only usage ledger; a source id is counted once per tenant and metric."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "metric", "source_id"),
        Index("ix_usage_records_tenant_metric_hour", "tenant_id", "metric", "hour"),
    )

    tenant_id: Mapped[str] = mapped_column(String(40))
    metric: Mapped[str] = mapped_column(String(60))
    quantity: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(30))
    dimensions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    hour: Mapped[datetime]
