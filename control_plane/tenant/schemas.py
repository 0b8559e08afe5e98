from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from control_plane.kit.schemas import InputSchema, ReadSchema

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{2,39}$", description="URL-safe unique name.")]
PlanName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$", description="Plan of the tenant.")
]
TenantStatus = Literal["active", "suspended"]


class TenantCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    slug: Slug
    plan: PlanName = "free"


class TenantUpdate(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=200)
    status: TenantStatus | None = Field(
        None, description="`suspended` refuses all its users and keys."
    )


class TenantRead(ReadSchema):
    id: str
    name: str
    slug: str
    plan: str
    status: TenantStatus
    created_at: datetime
