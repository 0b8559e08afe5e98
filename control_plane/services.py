"""The long-lived parts of one control-plane process, built once at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.authenticator import Authenticator
from control_plane.auth.keyring import KeyRing
from control_plane.auth.passwords import Passwords
from control_plane.auth.throttle import LoginThrottle
from control_plane.auth.tokens import AccessTokens
from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database, after_commit
from control_plane.kit.counters import CounterStore, LocalCounters, RedisCounters
from control_plane.kit.invalidation import Invalidation
from control_plane.observability import Metrics

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    keyring: KeyRing
    tokens: AccessTokens
    passwords: Passwords
    secrets: SecretBox
    counters: CounterStore
    throttle: LoginThrottle
    invalidation: Invalidation
    authenticator: Authenticator
    metrics: Metrics
    redis: Redis | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics) -> Services:
        settings.home_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        keyring = _keyring(settings)
        tokens = AccessTokens(settings, keyring)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        namespace = settings.redis_namespace
        counters: CounterStore = (
            RedisCounters(redis, namespace=namespace) if redis else LocalCounters()
        )
        invalidation = Invalidation(redis, channel=f"{namespace}:invalidate")
        authenticator = Authenticator(db, tokens, ttl_s=settings.auth_cache_ttl_seconds)
        invalidation.subscribe(authenticator.invalidate)
        return cls(
            settings=settings,
            db=db,
            keyring=keyring,
            tokens=tokens,
            passwords=Passwords(settings),
            secrets=SecretBox(_secret_key(settings)),
            counters=counters,
            throttle=LoginThrottle(settings, counters),
            invalidation=invalidation,
            authenticator=authenticator,
            metrics=metrics,
            redis=redis,
        )

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.invalidation.listen(), name="invalidation"),
            asyncio.create_task(self._flush_key_usage_forever(), name="key-usage"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.authenticator.flush_key_usage()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()

    def identity_changed(self, session: AsyncSession) -> None:
        """Cached users, keys and tenants are stale once this transaction commits."""
        after_commit(session, lambda: self.invalidation.publish("identity"))

    async def _flush_key_usage_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.key_usage_flush_seconds)
            await self.authenticator.flush_key_usage()


def _keyring(settings: Settings) -> KeyRing:
    pem = settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else None
    keyring = KeyRing(settings.home_dir / "keys", configured_pem=pem)
    keyring.ensure()
    return keyring


def _secret_key(settings: Settings) -> str:
    """The configured secret key, or (outside production) one generated and kept in home."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path: Path = settings.home_dir / "secret.key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
