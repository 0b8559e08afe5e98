"""Turns an ``Authorization`` header into a Principal, with caches.

Access tokens are verified by signature (cached per token until expiry); the user
and tenant behind them, whether their sign-in session (``sid``) was ended, and API
keys by hash, are cached for a short TTL. Any change to users, keys, sessions or
tenants invalidates the caches (in every process with Redis) before the response is
sent, so revocation holds from the next request.

Keys that are not ours are remembered briefly too, and keys are looked up many at a
time: a flood of random keys costs a few queries, not one each.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from control_plane.api_key.repository import ApiKeyRepository
from control_plane.auth.permissions import Role
from control_plane.auth.principal import Principal
from control_plane.auth.repository import RefreshTokenRepository
from control_plane.auth.tokens import InvalidToken, TokenVerifier, hash_secret
from control_plane.db import Database
from control_plane.errors import TenantSuspended, Unauthorized
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.models import ApiKey
from control_plane.tenant.repository import TenantRepository
from control_plane.user.repository import UserRepository

KEY_PATTERN = re.compile(r"^atr_([a-z0-9]{8})_([A-Za-z0-9_-]{32,64})$")
log = logging.getLogger(__name__)
REFUSED_TTL_S = 5.0  # how long a key that is not ours (or is revoked) is remembered
_REMEMBERED_MAX = 100_000
_BATCH_MAX = 500
_ANCESTORS_MAX = 16
T = TypeVar("T")


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
        self._refused: dict[str, tuple[str, float]] = {}  # key hash -> (why, until)
        self._sessions: dict[str, tuple[bool, float]] = {}  # sid -> (ended, until)
        self._lookups = _KeyLookups(db)
        self._generation = 0
        self._key_usage: dict[str, datetime] = {}

    def invalidate(self, topic: str = "*") -> None:
        self._generation += 1
        self._sessions.clear()
        if topic != "sessions":  # a sign-in session ended: users and keys are as they were
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
            claims = await self._tokens.verify_async(token)
        except InvalidToken as exc:
            raise Unauthorized(f"invalid access token: {exc}") from None
        principal = await self._user_principal(claims.sub)
        if principal.tenant_id != claims.tid:
            raise Unauthorized("invalid access token: tenant mismatch")
        if claims.sid is not None:
            await self._check_session(claims.sid)
        return replace(principal, session_id=claims.sid, auth_time=claims.auth_time)

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

    async def _check_session(self, sid: str) -> None:
        """Refuse the access tokens of a session that was ended (logout, reuse of a spent
        refresh token, a password change): they die with it, not at their expiry."""
        ended, until = self._sessions.get(sid, (False, 0.0))
        if until < time.monotonic():
            generation = self._generation
            async with self._db.sessionmaker() as session:
                ended = await RefreshTokenRepository(session).family_revoked(sid)
            if generation == self._generation:
                _bounded(self._sessions)[sid] = (ended, time.monotonic() + self._ttl)
        if ended:
            raise Unauthorized("this session has ended; sign in again")

    async def _load_user(self, user_id: str) -> _Entry:
        async with self._db.sessionmaker() as session:
            user = await UserRepository(session, PLATFORM).get(user_id)
            if user is None:
                raise Unauthorized("the account no longer exists")
            suspended = False
            if user.tenant_id is not None:
                tenant = await TenantRepository(session, PLATFORM).get(user.tenant_id)
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
            self._refuse_if_remembered(digest)
            generation = self._generation
            try:
                entry = await self._load_key(key, digest)
            except Unauthorized as exc:
                until = time.monotonic() + REFUSED_TTL_S
                _bounded(self._refused)[digest] = (exc.detail, until)
                raise
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

    def _refuse_if_remembered(self, digest: str) -> None:
        why, until = self._refused.get(digest, ("", 0.0))
        if until >= time.monotonic():
            raise Unauthorized(why)

    async def _load_key(self, key: str, digest: str) -> _Entry:
        match = KEY_PATTERN.match(key)
        if match is None:
            raise Unauthorized("malformed API key")
        row = await self._lookups.get(match.group(1))
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            raise Unauthorized("unknown API key")
        revoked, expires_at = await self._lineage(row)
        if revoked:
            raise Unauthorized("API key revoked")
        user = await self._load_user(row.user_id)
        principal = user.principal.with_key(
            api_key_id=row.id,
            scopes=list(row.scopes),
            expires_at=expires_at,
            rate_limit_rps=row.rate_limit_rps,
        )
        return _Entry(principal, user.suspended, time.monotonic() + self._ttl)

    async def _lineage(self, row: ApiKey) -> tuple[bool, datetime | None]:
        """Whether the key or any key that made it is revoked, and the earliest expiry
        among them: a key made by a key is refused with it, even one made while it was
        being revoked."""
        revoked, expires = row.revoked_at is not None, row.expires_at
        parent_id = row.parent_id
        if parent_id is None or revoked:
            return revoked, expires
        async with self._db.sessionmaker() as session:
            repo = ApiKeyRepository(session, PLATFORM)
            for _ in range(_ANCESTORS_MAX):
                parent = await repo.get(parent_id) if parent_id else None
                if parent is None:
                    break
                revoked = revoked or parent.revoked_at is not None
                if parent.expires_at is not None:
                    expires = min(expires or parent.expires_at, parent.expires_at)
                parent_id = parent.parent_id
        return revoked, expires

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


def _bounded(cache: dict[str, T]) -> dict[str, T]:
    """The cache, emptied first when it has grown past its bound (floods cannot fill memory)."""
    if len(cache) >= _REMEMBERED_MAX:
        cache.clear()
    return cache


class _KeyLookups:
    """Finds keys by prefix, many in one query. While one query runs, the lookups asked
    for meanwhile wait and are answered together by the next: one query in flight at a
    time, however many keys (known or not) arrive at once."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: dict[str, asyncio.Future[ApiKey | None]] = {}
        self._running: asyncio.Task[None] | None = None

    async def get(self, prefix: str) -> ApiKey | None:
        future = self._pending.get(prefix)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)
            self._pending[prefix] = future
        if self._running is None:
            self._running = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = dict(list(self._pending.items())[:_BATCH_MAX])
                for prefix in batch:
                    del self._pending[prefix]
                await self._answer(batch)
        finally:
            self._running = None

    async def _answer(self, batch: dict[str, asyncio.Future[ApiKey | None]]) -> None:
        try:
            async with self._db.sessionmaker() as session:
                rows = await ApiKeyRepository(session, PLATFORM).by_prefixes(list(batch))
        except Exception as exc:
            for future in batch.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for prefix, future in batch.items():
            if not future.done():
                future.set_result(rows.get(prefix))


def _retrieved(future: asyncio.Future[ApiKey | None]) -> None:
    """Mark an error as seen: a caller that gave up waiting must not leave it unraised."""
    if not future.cancelled():
        future.exception()
