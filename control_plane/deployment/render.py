"""The whole Serve config, rendered from the deployments the database holds.

Applications: the gateway (route prefix ``/``, the routing table in its
``user_config``), which also serves every shared deployment's versions from its own
replicas (an LRU per replica: no second hop), and one application per dedicated
deployment with its own replicas, resources and queue.
A pure function of its inputs: the same database gives the same config.
No secret goes into it (Ray's dashboard shows every application's ``args``): replicas
read the database and Redis URLs and the internal token from the secrets file it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from control_plane.config import Settings
from control_plane.deployment.targets import Resolved
from control_plane.models import Deployment
from serve_apps.gateway.config import GatewayConfig, Route, RouteTarget, RoutingTable
from serve_apps.runtime.cache import RuntimeConfig

if TYPE_CHECKING:
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema

# Ray's schemas are imported when first used, never at import time: Ray reads its
# token settings from the environment once, when first imported, and the local
# cluster sets them just before it starts Ray (``cluster.local``).

GATEWAY_APP = "atrium-gateway"
DEDICATED_PREFIX = "atrium-d-"
SERVER_DEPLOYMENT = "ModelServer"


@dataclass(frozen=True)
class Desired:
    deployment: Deployment
    targets: list[Resolved]


def app_of(deployment: Deployment) -> str:
    if deployment.mode == "dedicated":
        return f"{DEDICATED_PREFIX}{deployment.id.lower()}"
    return GATEWAY_APP


def render(
    settings: Settings,
    wanted: list[Desired],
    *,
    secrets_file: str,
    control_url: str,
    secrets_revision: str = "",
    auth_epoch: int = 0,
) -> dict[str, Any]:
    """The config for Serve's REST API (``PUT /api/serve/applications/``): Ray's own
    ``ServeDeploySchema`` holding the gateway's and runtime's own config models, so
    what the replicas will validate is validated here first."""
    from ray.serve.schema import HTTPOptionsSchema, ServeDeploySchema

    runtime = RuntimeConfig(
        control_url=control_url,
        secrets_file=secrets_file,
        secrets_revision=secrets_revision,
        allow_pickle=settings.allow_pickle,
        worker_memory_mb=settings.worker_memory_mb,
        worker_cpus=settings.worker_cpus,
        workers=settings.workers_per_replica,
        worker_idle_s=settings.worker_idle_seconds,
        worker_spares=settings.worker_spares,
        worker_warm=settings.worker_warm_formats,
    )
    apps = [_gateway(settings, wanted, auth_epoch, runtime)]
    # a dedicated replica serves one tenant: its own worker, never a spare
    dedicated = runtime.model_copy(update={"worker_spares": 0, "worker_warm": []})
    apps += [
        _server(app_of(d.deployment), dedicated, _dedicated(d.deployment))
        for d in wanted
        if d.deployment.mode == "dedicated"
    ]
    config = ServeDeploySchema(
        http_options=HTTPOptionsSchema(host=settings.serve_host, port=settings.serve_port),
        applications=apps,
    )
    return config.model_dump(mode="json", exclude_unset=True)


def routing_table(wanted: list[Desired], auth_epoch: int = 0) -> RoutingTable:
    routes = {}
    for item in wanted:
        d = item.deployment
        routes[RoutingTable.key(d.tenant_id, d.name)] = Route(
            deployment_id=d.id,
            tenant_id=d.tenant_id,
            name=d.name,
            app=app_of(d) if d.mode == "dedicated" else None,
            max_queued=d.max_queued_requests,
            targets=[
                RouteTarget(
                    version_id=t.version_id,
                    version=t.version,
                    weight=t.weight,
                    alias=t.alias,
                    signature=t.signature,
                )
                for t in item.targets
            ],
            max_batch_size=d.batching["max_batch_size"],
            batch_wait_ms=d.batching["batch_wait_timeout_ms"],
            timeout_s=d.timeout_ms / 1000,
        )
    return RoutingTable(routes=routes, auth_epoch=auth_epoch)


def _gateway(
    settings: Settings, wanted: list[Desired], auth_epoch: int, runtime: RuntimeConfig
) -> ServeApplicationSchema:
    args = GatewayConfig(
        **runtime.model_dump(exclude={"max_models", "models_budget_mb"}),
        max_models=settings.shared_models_per_replica,
        models_budget_mb=settings.shared_models_budget_mb,
        redis_namespace=settings.redis_namespace,
        plans_file=str(settings.plans_file),
        jwks_url=f"{settings.control_url}/.well-known/jwks.json",
        jwt_issuer=settings.jwt_issuer,
        jwt_audience=settings.jwt_audience,
        jwt_leeway_s=settings.jwt_leeway_seconds,
        auth_cache_ttl_s=settings.auth_cache_ttl_seconds,
        quota_dedupe_s=settings.quota_dedupe_seconds,
        max_body_bytes=settings.inference_max_body_bytes,
        usage_flush_s=settings.usage_flush_seconds,
        tenant_max_in_flight=settings.gateway_tenant_concurrency,
    )
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema

    gateway = DeploymentSchema(
        name="Gateway",
        num_replicas=settings.gateway_replicas,
        max_ongoing_requests=512,
        user_config=routing_table(wanted, auth_epoch).model_dump(mode="json"),
        ray_actor_options={"num_cpus": 0},
    )
    return ServeApplicationSchema(
        name=GATEWAY_APP,
        route_prefix="/",
        import_path="serve_apps.gateway.app:build",
        args=args.model_dump(mode="json"),
        deployments=[gateway],
    )


def _server(name: str, runtime: RuntimeConfig, server: DeploymentSchema) -> ServeApplicationSchema:
    from ray.serve.schema import ServeApplicationSchema

    return ServeApplicationSchema(
        name=name,
        route_prefix=None,
        import_path="serve_apps.runtime.server:build",
        args=runtime.model_dump(mode="json"),
        deployments=[server],
    )


def _dedicated(deployment: Deployment) -> DeploymentSchema:
    scaling, resources = deployment.autoscaling, deployment.resources
    sizing: dict[str, Any] = {}
    if scaling["min_replicas"] == scaling["max_replicas"]:
        sizing["num_replicas"] = scaling["max_replicas"]
    else:
        sizing["autoscaling_config"] = {
            "min_replicas": scaling["min_replicas"],
            "max_replicas": scaling["max_replicas"],
            "target_ongoing_requests": scaling["target_ongoing_requests"],
        }
    from ray.serve.schema import DeploymentSchema

    return DeploymentSchema(
        name=SERVER_DEPLOYMENT,
        max_ongoing_requests=256,
        max_queued_requests=deployment.max_queued_requests,
        ray_actor_options={"num_cpus": resources["num_cpus"], "num_gpus": resources["num_gpus"]},
        **sizing,
    )
