"""Who is calling, and what they may spend: the control plane's own authenticator and
quota service, built here from the gateway's config (no control-plane settings) and
the secrets file it names (the database and Redis URLs).

API keys are looked up by hash in the database (cached briefly, unknown ones too);
access tokens are verified by the control plane's public keys (JWKS, fetched again,
asynchronously and at most once per few seconds, for an unknown key id) and refused
once their sign-in session has ended; with Redis, revocations and plan changes reach
the caches at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from control_plane.auth.authenticator import Authenticator
from control_plane.auth.tokens import TokenVerifier
from control_plane.db import Database
from control_plane.kit.invalidation import Invalidation
from control_plane.kit.redis import connect
from control_plane.plan.catalog import load_catalog
from control_plane.quota.backend import LocalQuotaBackend, QuotaBackend, RedisQuotaBackend
from control_plane.quota.service import Quotas
from control_plane.usage.recorder import UsageRecorder
from serve_apps.gateway.config import GatewayConfig
from serve_apps.runtime.secrets import ServeSecrets

log = logging.getLogger(__name__)
_REFETCH_S = 5.0


class Jwks:
    """The control plane's public keys by ``kid``. ``key_of`` never fetches (it runs on
    the event loop, for any request); ``refresh`` fetches asynchronously, one fetch in
    flight at a time (callers meanwhile share it), and no sooner than ``min_interval_s``
    after the last, however many tokens name unknown keys: a flood of forged ``kid``s
    costs the control plane at most one request per interval, and rotation needs no
    restart."""

    def __init__(
        self,
        url: str,
        *,
        min_interval_s: float = _REFETCH_S,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._min_interval = min_interval_s
        self._transport = transport
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched: float | None = None
        self._in_flight: asyncio.Task[None] | None = None

    def key_of(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    async def refresh(self) -> None:
        if self._in_flight is None:
            if self._fetched is not None and self._clock() - self._fetched < self._min_interval:
                return
            self._fetched = self._clock()
            self._in_flight = asyncio.create_task(self._fetch())
            self._in_flight.add_done_callback(self._landed)
        await asyncio.shield(self._in_flight)

    def _landed(self, _task: asyncio.Task[None]) -> None:
        self._in_flight = None

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=5) as client:
                document = (await client.get(self._url)).raise_for_status().json()
        except (httpx.HTTPError, ValueError):
            log.warning("could not fetch the signing keys from %s", self._url)
            return
        keys = {}
        for jwk in document.get("keys", []):
            key = jwt.PyJWK(jwk).key
            if isinstance(key, Ed25519PublicKey) and "kid" in jwk:
                keys[jwk["kid"]] = key
        self._keys = keys


class Identity:
    def __init__(self, config: GatewayConfig) -> None:
        secrets = ServeSecrets.load(config.secrets_file)
        self.db = Database(secrets.database_url)
        self._redis = connect(secrets.redis_url) if secrets.redis_url else None
        self.jwks = Jwks(config.jwks_url)
        verifier = TokenVerifier(
            self.jwks.key_of,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            leeway_s=config.jwt_leeway_s,
            refresh_keys=self.jwks.refresh,
        )
        self.authenticator = Authenticator(self.db, verifier, ttl_s=config.auth_cache_ttl_s)
        self.usage = UsageRecorder(self.db)
        backend: QuotaBackend = (
            RedisQuotaBackend(self._redis, namespace=config.redis_namespace)
            if self._redis is not None
            else LocalQuotaBackend()
        )
        self.quotas = Quotas(
            db=self.db,
            backend=backend,
            catalog=load_catalog(Path(config.plans_file)),
            recorder=self.usage,
            cache_ttl_s=config.auth_cache_ttl_s,
            dedupe_ttl_s=config.quota_dedupe_s,
        )
        self._invalidation = Invalidation(
            self._redis, channel=f"{config.redis_namespace}:invalidate"
        )
        self._invalidation.subscribe(self.authenticator.invalidate)
        self._invalidation.subscribe(self.quotas.invalidate)
        self._flush_s = config.usage_flush_s
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        """Background work, started from the replica's event loop on first use."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._invalidation.listen()),
            loop.create_task(self._flush_forever()),
        ]

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.usage.flush()
                await self.authenticator.flush_key_usage()
            except Exception:
                log.exception("flushing usage failed; will retry")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.usage.flush()
        await self.db.dispose()
