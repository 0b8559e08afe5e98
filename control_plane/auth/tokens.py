"""Access tokens (EdDSA JWTs) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from control_plane.kit.ids import new_id

if TYPE_CHECKING:  # the gateway verifies tokens without the control plane's settings or keys
    from control_plane.auth.keyring import KeyRing
    from control_plane.config import Settings

ALGORITHM = "EdDSA"
_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    tid: str | None
    sid: str | None
    exp: float
    auth_time: float | None = None  # when the person signed in (OIDC `auth_time`)


class InvalidToken(Exception):
    """The token is not one of ours, or no longer valid."""


class UnknownKey(InvalidToken):
    """The token names a signing key (``kid``) not known here (yet)."""


class TokenVerifier:
    """Verifies access tokens by public key (``key_of(kid)``); verified tokens are cached
    until they expire. The control plane and the inference gateway both use it."""

    def __init__(
        self,
        key_of: Callable[[str], Ed25519PublicKey | None],
        *,
        issuer: str,
        audience: str,
        leeway_s: float,
        refresh_keys: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._key_of = key_of
        self._refresh_keys = refresh_keys
        self._issuer, self._audience, self._leeway = issuer, audience, leeway_s
        self._verified: dict[str, AccessClaims] = {}

    def verify(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        if cached is not None and cached.exp + self._leeway > time.time():
            return cached
        claims = self._decode(token)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    async def verify_async(self, token: str) -> AccessClaims:
        """``verify``, and for a key not known yet, ``refresh_keys`` (never blocking the
        event loop; the gateway's is single-flight and rate-limited) and once more."""
        try:
            return self.verify(token)
        except UnknownKey:
            if self._refresh_keys is None:
                raise
        await self._refresh_keys()
        return self.verify(token)

    def _decode(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unexpected algorithm")
        kid = header.get("kid")
        key = self._key_of(kid) if isinstance(kid, str) else None
        if key is None:
            raise UnknownKey("unknown signing key")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
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
            auth_time=_number(payload.get("auth_time")),
        )


class AccessTokens(TokenVerifier):
    """Signs access tokens with the keyring's current key; verifies them as above."""

    def __init__(self, settings: Settings, keyring: KeyRing) -> None:
        super().__init__(
            keyring.verification_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_seconds,
        )
        self._settings = settings
        self._keyring = keyring

    def issue(
        self,
        *,
        user_id: str,
        tenant_id: str | None,
        role: str,
        session_id: str,
        auth_time: int | None = None,
    ) -> str:
        """``auth_time``: when the session's sign-in happened (now, for a new sign-in)."""
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
            "auth_time": now if auth_time is None else auth_time,
        }
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def new_refresh_token() -> tuple[str, str]:
    """An opaque refresh token and the hash that is stored of it."""
    token = "rt_" + secrets.token_urlsafe(32)
    return token, hash_secret(token)


def hash_secret(secret: str) -> str:
    """SHA-256 suffices for high-entropy secrets (keys, refresh tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_family_id() -> str:
    return new_id("rtf")
