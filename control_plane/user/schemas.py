from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field

from control_plane.auth.permissions import Role
from control_plane.kit.schemas import InputSchema, ReadSchema


def _lower(value: str) -> str:
    return value.lower()


Email = Annotated[EmailStr, AfterValidator(_lower)]
Password = Annotated[
    str, Field(min_length=12, max_length=1024, description="At least 12 characters.")
]


class UserCreate(InputSchema):
    email: Email
    password: Password
    role: Role
    tenant_id: str | None = Field(None, description="Platform admins only: the user's tenant.")


class UserUpdate(InputSchema):
    email: Email | None = None
    password: Password | None = None
    role: Role | None = Field(None, description="Owners and admins only.")
    current_password: str | None = Field(
        None,
        max_length=1024,
        description="Changing your own email or password: your current password, unless "
        "you signed in within ATRIUM_REAUTH_SECONDS (default 300).",
    )
    totp_code: str | None = Field(
        None, pattern=r"^\d{6}$", description="With `current_password` when your MFA is on."
    )


class UserRead(ReadSchema):
    id: str
    email: str
    tenant_id: str | None
    role: Role
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None
