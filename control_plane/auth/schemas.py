from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class MeUser(BaseModel):
    id: str
    email: str
    tenant_id: str | None
    role: str
    mfa_enabled: bool


class MeKey(BaseModel):
    api_key_id: str
    tenant_id: str | None
    scopes: list[str]


class MfaSetup(BaseModel):
    secret: str
    otpauth_uri: str


class MfaChange(BaseModel):
    code: str = Field(pattern=r"^\d{6}$", description="Six-digit TOTP code.")
    current_password: str | None = Field(
        None,
        max_length=1024,
        description="Needed when the sign-in is older than ATRIUM_REAUTH_SECONDS.",
    )


class Jwks(BaseModel):
    keys: list[dict[str, str]]
