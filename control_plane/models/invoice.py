from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.models.base import Entity, TenantOwned


class Invoice(Entity, TenantOwned):
    """Issued once per tenant and period; immutable (a trigger refuses changes)."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("tenant_id", "period"),)

    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    period: Mapped[str] = mapped_column(String(7))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    total_cents: Mapped[int]
    issued_at: Mapped[datetime]
