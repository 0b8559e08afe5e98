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
from typing import Any

from control_plane.config import Settings
from control_plane.deployment.targets import Resolved
from control_plane.models import Deployment

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
    runtime_args = {
        "control_url": control_url,
        "secrets_file": secrets_file,
        "secrets_revision": secrets_revision,
        "allow_pickle": settings.allow_pickle,
        "worker_memory_mb": settings.worker_memory_mb,
        "worker_cpus": settings.worker_cpus,
        "workers": settings.workers_per_replica,
        "worker_idle_s": settings.worker_idle_seconds,
    }
    apps = [_gateway(settings, wanted, auth_epoch, runtime_args)]
    apps += [
        _server(app_of(d.deployment), runtime_args, _dedicated_options(d.deployment))
        for d in wanted
        if d.deployment.mode == "dedicated"
    ]
    return {
        "http_options": {"host": settings.serve_host, "port": settings.serve_port},
        "applications": apps,
    }


def routing_table(wanted: list[Desired], auth_epoch: int = 0) -> dict[str, Any]:
    routes = {}
    for item in wanted:
        d = item.deployment
        routes[f"{d.tenant_id}/{d.name}"] = {
            "deployment_id": d.id,
            "tenant_id": d.tenant_id,
            "name": d.name,
            "app": app_of(d) if d.mode == "dedicated" else None,
            "max_queued": d.max_queued_requests,
            "targets": [
                {
                    "version_id": t.version_id,
                    "version": t.version,
                    "weight": t.weight,
                    "alias": t.alias,
                    "signature": t.signature,
                }
                for t in item.targets
            ],
            "max_batch_size": d.batching["max_batch_size"],
            "batch_wait_ms": d.batching["batch_wait_timeout_ms"],
            "timeout_s": d.timeout_ms / 1000,
        }
    return {"routes": routes, "auth_epoch": auth_epoch}


def _gateway(
    settings: Settings, wanted: list[Desired], auth_epoch: int, runtime_args: dict[str, Any]
) -> dict[str, Any]:
    args = {
        **runtime_args,
        "max_models": settings.shared_models_per_replica,
        "models_budget_mb": settings.shared_models_budget_mb,
        "redis_namespace": settings.redis_namespace,
        "plans_file": str(settings.plans_file),
        "jwks_url": f"{settings.control_url}/.well-known/jwks.json",
        "jwt_issuer": settings.jwt_issuer,
        "jwt_audience": settings.jwt_audience,
        "jwt_leeway_s": settings.jwt_leeway_seconds,
        "auth_cache_ttl_s": settings.auth_cache_ttl_seconds,
        "quota_dedupe_s": settings.quota_dedupe_seconds,
        "max_body_bytes": settings.inference_max_body_bytes,
        "usage_flush_s": settings.usage_flush_seconds,
        "tenant_max_in_flight": settings.gateway_tenant_concurrency,
    }
    return {
        "name": GATEWAY_APP,
        "route_prefix": "/",
        "import_path": "serve_apps.gateway.app:build",
        "args": args,
        "deployments": [
            {
                "name": "Gateway",
                "num_replicas": settings.gateway_replicas,
                "max_ongoing_requests": 512,
                "user_config": routing_table(wanted, auth_epoch),
                "ray_actor_options": {"num_cpus": 0},
            }
        ],
    }


def _server(name: str, args: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "route_prefix": None,
        "import_path": "serve_apps.runtime.server:build",
        "args": args,
        "deployments": [{"name": SERVER_DEPLOYMENT, **options}],
    }


def _dedicated_options(deployment: Deployment) -> dict[str, Any]:
    scaling, resources = deployment.autoscaling, deployment.resources
    options: dict[str, Any] = {
        "max_ongoing_requests": 256,
        "max_queued_requests": deployment.max_queued_requests,
        "ray_actor_options": {
            "num_cpus": resources["num_cpus"],
            "num_gpus": resources["num_gpus"],
        },
    }
    if scaling["min_replicas"] == scaling["max_replicas"]:
        options["num_replicas"] = scaling["max_replicas"]
    else:
        options["autoscaling_config"] = {
            "min_replicas": scaling["min_replicas"],
            "max_replicas": scaling["max_replicas"],
            "target_ongoing_requests": scaling["target_ongoing_requests"],
        }
    return options
