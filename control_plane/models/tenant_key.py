from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.models.base import Entity, TenantOwned


class TenantKey(Entity, TenantOwned):
    """A tenant's data key, wrapped by the master key (envelope encryption of blobs)."""

    __tablename__ = "tenant_keys"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), unique=True
    )
    wrapped: Mapped[str] = mapped_column(String(200))
    master_key_id: Mapped[str] = mapped_column(String(40))
