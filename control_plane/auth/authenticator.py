"""Turns an ``Authorization`` header into a Principal, with caches.

Access tokens are verified by signature (cached per token until expiry); the user
and tenant behind them, and API keys by hash, are cached for a short TTL. Any
change to users, keys or tenants invalidates the caches (in every process with
Redis) before the response is sent, so revocation holds from the next request.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime

from control_plane.api_key.repository import ApiKeyRepository
from control_plane.auth.permissions import Role
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import InvalidToken, TokenVerifier, hash_secret
from control_plane.db import Database
from control_plane.errors import TenantSuspended, Unauthorized
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.tenant.repository import TenantRepo
from control_plane.user.repository import UserRepository

KEY_PATTERN = re.compile(r"^atr_([a-z0-9]{8})_([A-Za-z0-9_-]{32,64})$")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    suspended: bool
    expires: float


class Authenticator:
    def __init__(self, db: Database, tokens: TokenVerifier, *, ttl_s: float) -> None:
        self._db = db
        self._tokens = tokens
        self._ttl = ttl_s
        self._users: dict[str, _Entry] = {}
        self._keys: dict[str, _Entry] = {}
        self._generation = 0
        self._key_usage: dict[str, datetime] = {}

    def invalidate(self, _topic: str = "*") -> None:
        self._generation += 1
        self._users.clear()
        self._keys.clear()

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing bearer credentials")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("expected 'Authorization: Bearer <token or API key>'")
        if credential.startswith("atr_"):
            return await self._by_api_key(credential)
        return await self._by_access_token(credential)

    async def _by_access_token(self, token: str) -> Principal:
        try:
            claims = self._tokens.verify(token)
        except InvalidToken as exc:
            raise Unauthorized(f"invalid access token: {exc}") from None
        principal = await self._user_principal(claims.sub)
        if principal.tenant_id != claims.tid:
            raise Unauthorized("invalid access token: tenant mismatch")
        return replace(principal, session_id=claims.sid)

    async def _user_principal(self, user_id: str) -> Principal:
        entry = self._users.get(user_id)
        if entry is None or entry.expires < time.monotonic():
            generation = self._generation
            entry = await self._load_user(user_id)
            if generation == self._generation:
                self._users[user_id] = entry
        if entry.suspended:
            raise TenantSuspended("this tenant is suspended")
        return entry.principal

    async def _load_user(self, user_id: str) -> _Entry:
        async with self._db.sessionmaker() as session:
            user = await UserRepository(session, PLATFORM).get(user_id)
            if user is None:
                raise Unauthorized("the account no longer exists")
            suspended = False
            if user.tenant_id is not None:
                tenant = await TenantRepo(session, PLATFORM).get(user.tenant_id)
                suspended = tenant is None or tenant.status != "active"
        principal = Principal.for_user(
            user_id=user.id,
            tenant_id=user.tenant_id,
            role=Role(user.role),
            email=user.email,
            mfa_enabled=user.mfa_enabled,
        )
        return _Entry(principal, suspended, time.monotonic() + self._ttl)

    async def _by_api_key(self, key: str) -> Principal:
        digest = hash_secret(key)
        entry = self._keys.get(digest)
        if entry is None or entry.expires < time.monotonic():
            generation = self._generation
            entry = await self._load_key(key, digest)
            if generation == self._generation:
                self._keys[digest] = entry
        principal = entry.principal
        if principal.key_expires_at is not None and principal.key_expires_at <= utcnow():
            raise Unauthorized("API key expired")
        if entry.suspended:
            raise TenantSuspended("this tenant is suspended")
        assert principal.api_key_id is not None
        self._key_usage[principal.api_key_id] = utcnow()
        return principal

    async def _load_key(self, key: str, digest: str) -> _Entry:
        match = KEY_PATTERN.match(key)
        if match is None:
            raise Unauthorized("malformed API key")
        async with self._db.sessionmaker() as session:
            row = await ApiKeyRepository(session, PLATFORM).by_prefix(match.group(1))
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            raise Unauthorized("unknown API key")
        if row.revoked_at is not None:
            raise Unauthorized("API key revoked")
        user = await self._load_user(row.user_id)
        principal = user.principal.with_key(
            api_key_id=row.id,
            scopes=list(row.scopes),
            expires_at=row.expires_at,
            rate_limit_rps=row.rate_limit_rps,
        )
        return _Entry(principal, user.suspended, time.monotonic() + self._ttl)

    def take_key_usage(self) -> dict[str, datetime]:
        used, self._key_usage = self._key_usage, {}
        return used

    async def flush_key_usage(self) -> None:
        """Write the batched ``last_used_at`` of API keys in one transaction."""
        used = self.take_key_usage()
        if not used:
            return
        try:
            async with self._db.sessionmaker() as session, session.begin():
                await ApiKeyRepository(session, PLATFORM).mark_used(used)
        except Exception:
            log.exception("could not record API key usage; will retry")
            for key_id, when in used.items():
                self._key_usage.setdefault(key_id, when)
