"""The long-lived parts of one control-plane process, built once at start-up."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from cluster.rest import RayRest
from cluster.sandbox import INSTALL_HINT, Sandbox, default_sandbox
from cluster.tenant_local import LocalClusters
from cluster.token import ray_token
from control_plane.artifact.keys import DataKeys, master_key_text
from control_plane.artifact.store import ArtifactStore, filesystem
from control_plane.auth.authenticator import Authenticator
from control_plane.auth.keyring import KeyRing
from control_plane.auth.passwords import Passwords
from control_plane.auth.throttle import LoginThrottle
from control_plane.auth.tokens import AccessTokens
from control_plane.auth.totp import SecretBox
from control_plane.billing.tasks import close_periods_forever
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.deployment.reconciler import Reconciler
from control_plane.deployment.secrets import serve_secrets_file
from control_plane.job.clusters import TenantClusterService
from control_plane.job.passes import Passes
from control_plane.kit.counters import CounterStore, LocalCounters, RedisCounters
from control_plane.kit.invalidation import Invalidation
from control_plane.kit.redis import connect
from control_plane.kit.secret_files import (
    ensure_private_database,
    ensure_private_dir,
    home_secret,
)
from control_plane.kit.slots import FairSlots
from control_plane.model.validation import Validator
from control_plane.observability import Metrics
from control_plane.plan.catalog import Catalog, load_catalog
from control_plane.quota.backend import LocalQuotaBackend, QuotaBackend, RedisQuotaBackend
from control_plane.quota.service import Quotas
from control_plane.usage.recorder import UsageRecorder
from control_plane.usage.replicas import ReplicaMeter
from control_plane.webhook.dispatcher import Dispatcher

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0


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
    catalog: Catalog
    usage: UsageRecorder
    quotas: Quotas
    dispatcher: Dispatcher
    artifacts: ArtifactStore
    data_keys: DataKeys
    validator: Validator
    sandbox: Sandbox
    probe_slots: FairSlots
    cluster: RayRest
    reconciler: Reconciler
    clusters: TenantClusterService
    dashboard_passes: Passes
    internal_token: str
    redis: Redis | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics) -> Services:
        ensure_private_dir(settings.home_dir)
        ensure_private_database(settings.resolved_database_url)
        db = Database(settings.resolved_database_url)
        tokens = AccessTokens(settings, keyring := _keyring(settings))
        redis = connect(settings.redis_url) if settings.redis_url else None
        counters = _counters(settings, redis)
        invalidation = Invalidation(redis, channel=f"{settings.redis_namespace}:invalidate")
        authenticator = Authenticator(db, tokens, ttl_s=settings.auth_cache_ttl_seconds)
        catalog = load_catalog(settings.plans_file)
        usage = UsageRecorder(db)
        quotas = _quotas(settings, db, redis, catalog=catalog, usage=usage)
        secret_key = _secret_key(settings)
        box = SecretBox(secret_key)
        artifacts = _artifacts(settings)
        data_keys = DataKeys(db, master_key_text(settings))
        cluster = RayRest(
            settings.cluster_url, ray_token(settings.ray_auth_token, settings.home_dir)
        )
        reconciler, internal_token = _reconciler(settings, db, cluster, quotas)
        for listener in (authenticator.invalidate, quotas.invalidate, reconciler.identity_changed):
            invalidation.subscribe(listener)
        sandbox = _sandbox(settings)
        slots = FairSlots(settings.probe_concurrency, settings.probe_per_tenant)
        clusters = TenantClusterService(
            backend=LocalClusters(sandbox, start_timeout_s=settings.cluster_start_timeout_seconds),
            quotas=quotas,
            db=db,
            settings=settings,
            meter=ReplicaMeter(quotas, source="cluster", dimension="cluster"),
        )
        validator = Validator(
            db=db,
            artifacts=artifacts,
            data_keys=data_keys,
            settings=settings,
            sandbox=sandbox,
            slots=slots,
        )
        return cls(
            settings=settings,
            db=db,
            keyring=keyring,
            tokens=tokens,
            passwords=Passwords(settings),
            secrets=box,
            counters=counters,
            throttle=LoginThrottle(settings, counters),
            invalidation=invalidation,
            authenticator=authenticator,
            metrics=metrics,
            catalog=catalog,
            usage=usage,
            quotas=quotas,
            dispatcher=Dispatcher(db=db, settings=settings, secrets=box, redis=redis),
            artifacts=artifacts,
            data_keys=data_keys,
            validator=validator,
            sandbox=sandbox,
            probe_slots=slots,
            cluster=cluster,
            reconciler=reconciler,
            clusters=clusters,
            dashboard_passes=Passes(secret_key),
            internal_token=internal_token,
            redis=redis,
        )

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.invalidation.listen(), name="invalidation"),
            asyncio.create_task(
                _every(self.settings.key_usage_flush_seconds, self.authenticator.flush_key_usage),
                name="key-usage",
            ),
            asyncio.create_task(
                _every(self.settings.usage_flush_seconds, self.usage.flush), name="usage"
            ),
            asyncio.create_task(self.dispatcher.run_forever(), name="dispatcher"),
            asyncio.create_task(
                close_periods_forever(
                    self.db, self.catalog, every_s=self.settings.billing_check_seconds
                ),
                name="billing",
            ),
            asyncio.create_task(self.validator.run_forever(), name="model-validation"),
            asyncio.create_task(self.clusters.run_forever(), name="tenant-clusters"),
        ]
        if self.cluster.configured:
            self._tasks.append(
                asyncio.create_task(self.reconciler.run_forever(), name="reconciler")
            )

    async def stop(self) -> None:
        """Stop the background work and close connections; never hang a shutdown (a task
        stuck on a network call is left behind after a grace period, and said so)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in stuck:
                log.warning("background task %s did not stop in time", task.get_name())
        steps = [self.authenticator.flush_key_usage, self.usage.flush, self.dispatcher.close]
        steps += [self.cluster.close, self.clusters.close]
        if self.redis is not None:
            steps.append(self.redis.aclose)
        steps.append(self.db.dispose)
        for step in steps:
            try:
                await asyncio.wait_for(step(), STOP_GRACE_S)
            except Exception:  # a timeout too
                log.exception("shutdown step %s failed", getattr(step, "__qualname__", step))


async def _every(period_s: float, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(period_s)
        await work()


def _counters(settings: Settings, redis: Redis | None) -> CounterStore:
    """Sign-in counters shared by every process through Redis, else this process's own."""
    if redis is None:
        return LocalCounters()
    return RedisCounters(redis, namespace=settings.redis_namespace)


def _quotas(
    settings: Settings,
    db: Database,
    redis: Redis | None,
    *,
    catalog: Catalog,
    usage: UsageRecorder,
) -> Quotas:
    backend: QuotaBackend = (
        RedisQuotaBackend(redis, namespace=settings.redis_namespace)
        if redis
        else LocalQuotaBackend()
    )
    return Quotas(
        db=db,
        backend=backend,
        catalog=catalog,
        recorder=usage,
        cache_ttl_s=settings.auth_cache_ttl_seconds,
        dedupe_ttl_s=settings.quota_dedupe_seconds,
    )


def _reconciler(
    settings: Settings, db: Database, cluster: RayRest, quotas: Quotas
) -> tuple[Reconciler, str]:
    """The reconciler, and the token the Serve replicas present on /internal."""
    internal_token = home_secret(
        settings.internal_token, settings.home_dir / "internal.key", _new_token
    )
    reconciler = Reconciler(
        db=db,
        settings=settings,
        cluster=cluster,
        secrets_file=serve_secrets_file(settings, internal_token=internal_token),
        meter=ReplicaMeter(quotas),
    )
    return reconciler, internal_token


def _sandbox(settings: Settings) -> Sandbox:
    """The sandbox for tenant files; production refuses to start without one."""
    sandbox = default_sandbox()
    missing = sandbox.unavailable()
    if missing is not None and settings.environment == "production":
        raise RuntimeError(f"production needs the sandbox for tenant code: {missing}")
    if missing is not None:
        log.warning("no sandbox: uploads and inference answer 503 until %s", INSTALL_HINT)
    return sandbox


def _artifacts(settings: Settings) -> ArtifactStore:
    secret = settings.s3_secret_access_key
    return ArtifactStore(
        *filesystem(
            settings.artifact_url or str(settings.home_dir / "artifacts"),
            endpoint=settings.s3_endpoint_url,
            access_key=settings.s3_access_key_id,
            secret_key=secret.get_secret_value() if secret else None,
            region=settings.s3_region,
        )
    )


def _keyring(settings: Settings) -> KeyRing:
    pem = settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else None
    keyring = KeyRing(settings.home_dir / "keys", configured_pem=pem)
    keyring.ensure()
    return keyring


def _new_token() -> str:
    return secrets.token_hex(32)


def _secret_key(settings: Settings) -> str:
    return home_secret(
        settings.secret_key, settings.home_dir / "secret.key", lambda: secrets.token_urlsafe(48)
    )
