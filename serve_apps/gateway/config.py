"""What the gateway is given: its settings (Serve ``args``) and the routing table the
reconciler renders from the database (Serve ``user_config``, updated in place)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from serve_apps.runtime.cache import RuntimeConfig


class GatewayConfig(RuntimeConfig):
    """The runtime's settings (it serves shared deployments' models) and the gateway's.
    The database and Redis URLs are secrets: they come from ``secrets_file``."""

    redis_namespace: str = "atrium"
    plans_file: str
    jwks_url: str = Field(description="The control plane's public signing keys.")
    jwt_issuer: str
    jwt_audience: str
    jwt_leeway_s: float = 10
    auth_cache_ttl_s: float = 30
    quota_dedupe_s: int = 3600
    max_body_bytes: int = Field(16 * 1024 * 1024, description="Larger requests: 413.")
    usage_flush_s: float = 2.0
    tenant_max_in_flight: int = Field(
        64,
        ge=1,
        description="Requests one tenant may have in flight in one gateway replica; beyond: 503.",
    )


class RouteTarget(BaseModel):
    version_id: str
    version: int
    weight: int
    alias: str | None = None
    signature: dict[str, object]


class Route(BaseModel):
    deployment_id: str
    tenant_id: str
    name: str
    app: str | None = Field(
        description="The Serve application of a dedicated deployment; None: shared, served "
        "in the gateway's own replicas."
    )
    max_queued: int = Field(description="Requests in flight beyond this: 503.")
    targets: list[RouteTarget]
    max_batch_size: int
    batch_wait_ms: float
    timeout_s: float = Field(
        30.0, description="Each prediction's deadline; past it: 504 prediction_timeout."
    )


class RoutingTable(BaseModel):
    auth_epoch: int = Field(0, description="Changes when cached identities must be dropped.")
    routes: dict[str, Route] = Field(default_factory=dict, description="'tenant/name' -> route")

    @staticmethod
    def key(tenant_id: str, name: str) -> str:
        return f"{tenant_id}/{name}"
