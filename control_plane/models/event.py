from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.models.base import Entity, TenantOwned


class Event(Entity, TenantOwned):
    """The transactional outbox: written with the change it describes, never changed.
    What is still to be relayed lives in ``outbox_pending``."""

    __tablename__ = "events"

    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    type: Mapped[str] = mapped_column(String(80))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class OutboxPending(Entity.registry.generate_base()):  # type: ignore[misc]
    """One row per event and relay duty (``fanout``, ``stream``) still to do. The relay
    deletes rows as it claims them: a narrow delete, instead of rewriting the event."""

    __tablename__ = "outbox_pending"

    duty: Mapped[str] = mapped_column(String(10), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
