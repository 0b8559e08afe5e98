"""Settings of the control plane, read from ``ATRIUM_*`` environment variables."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "admin", "atrium"}

# OWASP password storage cheat sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_MIN_MEMORY_KIB = 19_456
OWASP_MIN_TIME_COST = 2
MIN_SHARED_TOKEN_LENGTH = 32  # internal and metrics tokens
LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]


class Settings(BaseSettings):
    """Everything an operator can configure. Production refuses insecure defaults."""

    model_config = SettingsConfigDict(env_prefix="ATRIUM_", env_file=".env", extra="ignore")

    environment: Literal["local", "test", "production"] = Field(
        "local", description="`production` turns insecure defaults into start-up errors."
    )
    home: Path = Field(
        Path("~/.atrium"), description="Holds the SQLite file, artifacts and signing keys."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in ATRIUM_HOME."
    )
    redis_url: str | None = Field(
        None, description="Redis for throttling, caches and invalidation; optional."
    )
    redis_namespace: str = Field(
        "atrium", pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="Prefix of every Redis key."
    )
    api_host: str = Field("127.0.0.1", description="Control plane bind address.")
    api_port: int = Field(8080, ge=0, le=65535, description="Control plane port.")
    serve_port: int = Field(8000, ge=0, le=65535, description="Ray Serve HTTP port.")
    ray_address: str | None = Field(
        None,
        description="Join this Ray cluster instead of starting a local head: its dashboard "
        "URL (http://HOST:8265), where the Serve REST API is.",
    )
    bootstrap_admin_email: str | None = Field(
        None, description="Platform admin made on first start."
    )
    bootstrap_admin_password: SecretStr | None = Field(None, description="Its password.")

    secret_key: SecretStr | None = Field(
        None,
        description="Encrypts MFA secrets at rest. Generated under ATRIUM_HOME when unset "
        "(local only); required in production.",
    )
    jwt_private_key: SecretStr | None = Field(
        None, description="PEM Ed25519 private key signing access tokens; else generated."
    )
    jwt_issuer: str = Field("atrium", description="`iss` of access tokens.")
    jwt_audience: str = Field("atrium-api", description="`aud` of access tokens.")
    access_token_ttl_seconds: int = Field(900, ge=30, le=900, description="At most 15 minutes.")
    refresh_token_ttl_seconds: int = Field(14 * 86400, ge=60, description="Refresh token life.")
    refresh_family_lifetime_seconds: int = Field(
        30 * 86400,
        ge=60,
        description="A sign-in session's absolute lifetime: past it refreshing fails (401) "
        "however recently its chain was rotated, and the user signs in again.",
    )
    jwt_leeway_seconds: int = Field(10, ge=0, le=60, description="Clock skew allowed.")

    argon2_time_cost: int = Field(3, ge=1, description="argon2id iterations.")
    argon2_memory_kib: int = Field(65_536, ge=8, description="argon2id memory in KiB.")
    argon2_parallelism: int = Field(4, ge=1, description="argon2id lanes.")
    password_min_length: int = Field(12, ge=12, description="Shortest accepted password.")
    reauth_seconds: int = Field(
        300,
        ge=0,
        description="Changing one's own password, email or MFA needs a sign-in at most this "
        "old (the token's `auth_time`, kept across refreshes), or `current_password` (and "
        "`totp_code` with MFA on) in the request.",
    )
    totp_max_failures: int = Field(
        5,
        ge=1,
        description="Wrong MFA codes per user per window, over every route that checks one "
        "(sign-in, re-authentication, MFA enable/disable); beyond, 429 until the window ends.",
    )
    totp_failure_window_seconds: int = Field(900, ge=1, description="MFA code throttle window.")

    login_max_failures_per_account: int = Field(
        5,
        ge=1,
        description="Failed sign-ins to one account from one client address (its /64 for "
        "IPv6) per window; beyond, that address waits (429) while others still sign in.",
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, description="Sign-in attempts from one client address (its /64) per window."
    )
    login_failure_window_seconds: int = Field(900, ge=1, description="Throttle window.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxies (CIDRs, JSON list) whose X-Forwarded-For is believed: when the "
        "direct peer is one, the client is the right-most address not in these networks. "
        "Empty (the default): X-Forwarded-For is ignored.",
    )
    password_hash_concurrency: int = Field(
        4, ge=1, description="Password hashes and checks running at once (per process)."
    )
    password_hash_queue: int = Field(
        16,
        ge=0,
        description="Sign-ins that may wait for one of those; beyond, 503 with Retry-After.",
    )

    auth_cache_ttl_seconds: float = Field(30.0, ge=0, description="Credential cache lifetime.")
    key_usage_flush_seconds: float = Field(5.0, gt=0, description="last_used_at batch period.")
    log_level: str = Field("INFO", description="Root log level.")

    artifact_url: str | None = Field(
        None,
        description="Blobs: a local path or s3://bucket/prefix; default ATRIUM_HOME/artifacts.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, …)."
    )
    s3_access_key_id: str | None = Field(None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key.")
    s3_region: str | None = Field(None, description="S3 region.")
    master_key: SecretStr | None = Field(
        None,
        description="Base64 of 32 bytes wrapping tenants' data keys. Generated under ATRIUM_HOME "
        "when unset (local only); required in production.",
    )
    serve_host: str = Field("127.0.0.1", description="Address Ray Serve's HTTP proxy binds.")
    public_serve_url: str | None = Field(
        None, description="Where users send inference (default http://127.0.0.1:SERVE_PORT)."
    )
    internal_control_url: str | None = Field(
        None,
        description="How Serve replicas reach the control plane (artifacts, signing keys); "
        "default http://127.0.0.1:API_PORT.",
    )
    internal_token: SecretStr | None = Field(
        None,
        description="Serve replicas present it to the internal routes; generated under "
        "ATRIUM_HOME when unset (empty counts as unset). Production: at least 32 characters.",
    )
    internal_networks: list[str] = Field(
        default_factory=lambda: list(LOOPBACK_NETWORKS),
        description="Client networks (CIDR) the /internal routes answer, besides needing the "
        "internal token; default loopback only. Add the Ray nodes' network when replicas "
        "run on other machines. Requests carrying proxy headers (Forwarded, X-Forwarded-For) "
        "are refused there.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, /metrics needs `Authorization: Bearer <token>` (32+ characters). "
        "Unset: /metrics is open, except in production, where it answers loopback only.",
    )
    api_replicas: int = Field(
        1,
        ge=1,
        description="Control-plane processes serving this database (behind a load balancer). "
        "Above 1, production needs ATRIUM_REDIS_URL: throttles, quotas and revocation are "
        "otherwise counted per process.",
    )
    serve_secrets_file: Path | None = Field(
        None,
        description="The secrets Serve replicas read (JSON: database_url, redis_url, "
        "internal_token), mounted at this path on every Ray node (Kubernetes: a Secret). "
        "Unset: the control plane writes ATRIUM_HOME/serve-secrets.json (mode 0600) at "
        "start-up. Serve's application args carry only the path.",
    )
    ray_dashboard_url: str | None = Field(
        None, description="Set by `atrium up` for the head it starts (else ATRIUM_RAY_ADDRESS)."
    )
    ray_dashboard_port: int = Field(8265, ge=0, le=65535, description="Local head's dashboard.")
    ray_auth_token: SecretStr | None = Field(None, description="Ray's auth token, if enabled.")
    serve_high_throughput: bool = Field(
        False,
        description="Start the local Ray head with Serve's HAProxy ingress and throughput-"
        "optimized mode (RAY_SERVE_ENABLE_HA_PROXY, RAY_SERVE_THROUGHPUT_OPTIMIZED).",
    )
    reconcile_seconds: float = Field(2.0, gt=0, description="Reconciler period.")
    cluster_memory_mb_per_cpu: int = Field(
        2048,
        ge=256,
        description="Memory of a tenant's own Ray cluster per CPU its plan gives it (a real cap).",
    )
    cluster_start_timeout_seconds: float = Field(
        90, gt=0, description="How long a tenant's Ray cluster may take to start."
    )
    job_poll_seconds: float = Field(
        2.0, gt=0, description="How often Ray jobs' statuses are read into the jobs table."
    )
    ray_proxy_timeout_seconds: float = Field(
        60, gt=0, description="A call proxied to a tenant's Ray cluster (Jobs API, dashboard)."
    )
    gateway_replicas: int = Field(
        1, ge=1, description="Inference gateway replicas (they also serve shared deployments)."
    )
    gateway_tenant_concurrency: int = Field(
        64,
        ge=1,
        description="Requests one tenant may have in flight in one gateway replica; beyond: 503.",
    )
    shared_models_per_replica: int = Field(
        256, ge=1, description="Shared deployments' models each gateway replica keeps loaded (LRU)."
    )
    shared_models_budget_mb: int = Field(
        2048, ge=1, description="…and the total size of their artifacts it may hold."
    )
    worker_memory_mb: int = Field(
        2048, ge=64, description="Each sandboxed runtime worker's memory cap (one tenant's models)."
    )
    worker_cpus: float = Field(1.0, gt=0, description="Each runtime worker's CPU share.")
    workers_per_replica: int = Field(
        16, ge=1, description="Runtime workers (one per tenant) beside each replica; LRU beyond."
    )
    worker_idle_seconds: float = Field(
        300, gt=0, description="A runtime worker idle this long is stopped (its models unload)."
    )
    worker_spares: int = Field(
        2,
        ge=0,
        le=16,
        description="Runtime workers each replica keeps started ahead, owned by no tenant "
        "yet, so a tenant's first request does not wait for a sandbox and imports.",
    )
    worker_warm_formats: list[str] = Field(
        default_factory=lambda: ["onnx", "sklearn", "xgboost"],
        description="Formats whose frameworks every runtime worker imports before its "
        "first request (torch and tensorflow cost hundreds of MB each).",
    )
    inference_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Larger inference requests: 413."
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Larger request bodies to the control plane: 413, before they are read "
        "(uploads of models and datasets have their plan's limits instead).",
    )
    allow_pickle: bool = Field(
        False,
        description="Accept pickle/joblib model files. Loading one runs any code it holds: "
        "enable only where every tenant is trusted.",
    )
    probe_memory_mb: int = Field(
        4096, ge=256, description="Address-space cap of the process that validates a model."
    )
    probe_timeout_seconds: float = Field(
        180.0, gt=0, description="A model that takes longer to load and predict fails."
    )
    probe_concurrency: int = Field(
        1, ge=1, description="Sandboxed validations (models, datasets) at once per process."
    )
    probe_per_tenant: int = Field(
        1, ge=1, description="Of those, how many one tenant may hold (tenants take turns)."
    )
    probe_poll_seconds: float = Field(
        5.0, gt=0, description="How often unvalidated versions are looked for (after restarts)."
    )

    plans_file: Path = Field(
        Path(str(files("control_plane.plan").joinpath("plans.yaml"))),
        description="The plan catalogue (YAML), validated at start-up; default: the one "
        "shipped in the package (control_plane/plan/plans.yaml).",
    )
    usage_flush_seconds: float = Field(
        2.0,
        gt=0,
        description="Usage is buffered and written this often; a crash loses at most this.",
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts webhooks may target even when they resolve to private addresses.",
    )
    webhook_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Deadline of a whole delivery attempt: resolving, connecting, sending, "
        "and reading the answer (of which at most 64 KiB are read).",
    )
    webhook_max_attempts: int = Field(8, ge=1, description="Attempts before a delivery fails.")
    webhook_retry_base_seconds: float = Field(
        5.0, gt=0, description="First retry delay; doubles each attempt (capped at 1 h)."
    )
    webhook_disable_after_failures: int = Field(
        20, ge=1, description="Consecutive failed attempts that disable a webhook."
    )
    webhook_concurrency: int = Field(
        64, ge=1, description="Webhook deliveries in flight at once (per process)."
    )
    webhook_concurrency_per_tenant: int = Field(
        8, ge=1, description="Of those, how many may be one tenant's."
    )
    webhook_concurrency_per_webhook: int = Field(
        2, ge=1, description="Of those, how many may go to one webhook."
    )
    quota_dedupe_seconds: int = Field(
        3600,
        ge=1,
        description="How long a charged source id is remembered by the counters "
        "(the usage ledger itself never counts a source id twice).",
    )
    dispatcher_poll_seconds: float = Field(0.5, gt=0, description="Outbox polling period.")
    billing_check_seconds: float = Field(
        3600.0, gt=0, description="How often the scheduler closes finished billing periods."
    )

    @property
    def cluster_url(self) -> str | None:
        """Ray's dashboard, where the control plane applies Serve configs (None: no cluster)."""
        return self.ray_dashboard_url or self.ray_address

    @property
    def serve_url(self) -> str:
        return (self.public_serve_url or f"http://127.0.0.1:{self.serve_port}").rstrip("/")

    @property
    def control_url(self) -> str:
        return (self.internal_control_url or f"http://127.0.0.1:{self.api_port}").rstrip("/")

    @field_validator("internal_token", "metrics_token", mode="after")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """An empty token never authenticates anyone: outside production it means unset
        (production refuses it by name)."""
        if value is None or value.get_secret_value().strip():
            return value
        if info.data.get("environment") == "production":
            return value
        return None

    @field_validator("internal_networks", "trusted_proxies", mode="after")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the entry
        return value

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = _unsafe_production(self)
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if key.lower() in _PLACEHOLDERS or len(key) < 32:
            problems.append("ATRIUM_SECRET_KEY must be set to at least 32 random characters")
        pw = self.bootstrap_admin_password
        if pw is not None and (
            pw.get_secret_value().lower() in _PLACEHOLDERS
            or len(pw.get_secret_value()) < self.password_min_length
        ):
            problems.append("ATRIUM_BOOTSTRAP_ADMIN_PASSWORD is a placeholder or too short")
        if self.master_key is None:
            problems.append("ATRIUM_MASTER_KEY must be set (base64 of 32 random bytes)")
        if (
            self.argon2_memory_kib < OWASP_MIN_MEMORY_KIB
            or self.argon2_time_cost < OWASP_MIN_TIME_COST
        ):
            problems.append(
                "ATRIUM_ARGON2_MEMORY_KIB/ATRIUM_ARGON2_TIME_COST are below OWASP minimums"
            )
        if problems:
            raise ValueError("insecure production settings: " + "; ".join(problems))
        return self

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @cached_property
    def resolved_database_url(self) -> str:
        if not self.database_url:
            return f"sqlite+aiosqlite:///{self.home_dir / 'atrium.db'}"
        url = self.database_url
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url


def _unsafe_production(settings: Settings) -> list[str]:
    """Deployment choices production refuses, each naming its setting."""
    problems = []
    if settings.redis_url is None and max(settings.api_replicas, settings.gateway_replicas) > 1:
        problems.append(
            "ATRIUM_REDIS_URL must be set when more than one process serves "
            "(ATRIUM_API_REPLICAS/ATRIUM_GATEWAY_REPLICAS > 1): throttles, quotas and "
            "revocation would be per process"
        )
    if _is_remote(settings.cluster_url) and settings.ray_auth_token is None:
        problems.append("ATRIUM_RAY_AUTH_TOKEN must be set to join a remote ATRIUM_RAY_ADDRESS")
    if settings.allow_pickle:
        problems.append("ATRIUM_ALLOW_PICKLE=true lets tenants' model files run any code")
    for name, token in (("INTERNAL", settings.internal_token), ("METRICS", settings.metrics_token)):
        if token is not None and len(token.get_secret_value()) < MIN_SHARED_TOKEN_LENGTH:
            problems.append(
                f"ATRIUM_{name}_TOKEN must be at least {MIN_SHARED_TOKEN_LENGTH} characters"
            )
    if settings.resolved_database_url.startswith("sqlite"):
        problems.append("ATRIUM_DATABASE_URL must name a Postgres database, not SQLite")
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.internal_networks]
    if any(network.prefixlen == 0 for network in networks):
        problems.append("ATRIUM_INTERNAL_NETWORKS must not admit every address")
    return problems


def _is_remote(address: str | None) -> bool:
    if not address:
        return False
    host = urlsplit(address if "://" in address else f"//{address}").hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
