"""Access tokens (EdDSA JWTs) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from control_plane.auth.keyring import KeyRing
from control_plane.config import Settings
from control_plane.kit.ids import new_id

ALGORITHM = "EdDSA"
_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    tid: str | None
    sid: str | None
    exp: float


class InvalidToken(Exception):
    """The token is not one of ours, or no longer valid."""


class AccessTokens:
    """Signs and verifies access tokens; verified tokens are cached until they expire."""

    def __init__(self, settings: Settings, keyring: KeyRing) -> None:
        self._settings = settings
        self._keyring = keyring
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, *, user_id: str, tenant_id: str | None, role: str, session_id: str) -> str:
        key = self._keyring.signing_key()
        now = int(time.time())
        claims = {
            "sub": user_id,
            "tid": tenant_id,
            "role": role,
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "iat": now,
            "nbf": now,
            "exp": now + self._settings.access_token_ttl_seconds,
            "jti": secrets.token_urlsafe(12),
            "typ": "access",
            "sid": session_id,
        }
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})

    def verify(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        if cached is not None and cached.exp + self._settings.jwt_leeway_seconds > time.time():
            return cached
        claims = self._decode(token)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _decode(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unexpected algorithm")
        kid = header.get("kid")
        key = self._keyring.verification_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if payload.get("typ") != "access":
            raise InvalidToken("not an access token")
        return AccessClaims(
            sub=payload["sub"],
            tid=payload.get("tid"),
            sid=payload.get("sid"),
            exp=float(payload["exp"]),
        )


def new_refresh_token() -> tuple[str, str]:
    """An opaque refresh token and the hash that is stored of it."""
    token = "rt_" + secrets.token_urlsafe(32)
    return token, hash_secret(token)


def hash_secret(secret: str) -> str:
    """SHA-256 suffices for high-entropy secrets (keys, refresh tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_family_id() -> str:
    return new_id("rtf")
