"""Settings of the control plane, read from ``ATRIUM_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "admin", "atrium"}

# OWASP password storage cheat sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_MIN_MEMORY_KIB = 19_456
OWASP_MIN_TIME_COST = 2


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
    jwt_leeway_seconds: int = Field(10, ge=0, le=60, description="Clock skew allowed.")

    argon2_time_cost: int = Field(3, ge=1, description="argon2id iterations.")
    argon2_memory_kib: int = Field(65_536, ge=8, description="argon2id memory in KiB.")
    argon2_parallelism: int = Field(4, ge=1, description="argon2id lanes.")
    password_min_length: int = Field(12, ge=12, description="Shortest accepted password.")

    login_max_failures_per_account: int = Field(5, ge=1, description="Before 429 per account.")
    login_max_failures_per_address: int = Field(20, ge=1, description="Before 429 per client.")
    login_failure_window_seconds: int = Field(900, ge=1, description="Throttle window.")

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
        "ATRIUM_HOME when unset.",
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
    inference_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Larger inference requests: 413."
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
        Path(__file__).resolve().parent.parent / "configs" / "plans.yaml",
        description="The plan catalogue (YAML), validated at start-up.",
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
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="Per delivery attempt.")
    webhook_max_attempts: int = Field(8, ge=1, description="Attempts before a delivery fails.")
    webhook_retry_base_seconds: float = Field(
        5.0, gt=0, description="First retry delay; doubles each attempt (capped at 1 h)."
    )
    webhook_disable_after_failures: int = Field(
        20, ge=1, description="Consecutive failed attempts that disable a webhook."
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

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
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
