from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from control_plane.auth.permissions import SCOPE_ACTIONS
from control_plane.kit.schemas import InputSchema, ReadSchema

SCOPES_DOC = "Any of: " + ", ".join(SCOPE_ACTIONS)


class ApiKeyCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPE_ACTIONS), description=SCOPES_DOC)
    expires_at: AwareDatetime | None = Field(None, description="RFC 3339 with a zone; optional.")
    rate_limit_rps: float | None = Field(
        None, gt=0, le=100_000, description="A rate of this key's own, within the tenant's."
    )


class ApiKeyRead(ReadSchema):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    user_id: str
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit_rps: float | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The whole key. Shown only in this response.")
