"""The Serve config is built from typed models (Ray's ``ServeDeploySchema`` holding the
gateway's and runtime's own config models): what replicas will read is validated when
the reconciler renders it, not when a replica fails to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from control_plane.deployment.render import routing_table
from serve_apps.gateway.config import GatewayConfig, RoutingTable
from serve_apps.runtime.cache import RuntimeConfig
from tests.unit.test_serve_secrets import _deployment, _rendered, _settings


def test_the_rendered_config_is_what_serve_and_the_replicas_accept(tmp_path: Path) -> None:
    wanted = [_deployment("shared"), _deployment("dedicated")]
    config = _rendered(_settings(tmp_path), wanted)
    ServeDeploySchema.model_validate(config)
    gateway, dedicated = config["applications"]
    assert GatewayConfig.model_validate(gateway["args"]).tenant_max_in_flight == 64
    table = RoutingTable.model_validate(gateway["deployments"][0]["user_config"])
    assert table == routing_table(wanted)
    assert set(table.routes) == {"ten_1/churn-shared", "ten_1/churn-dedicated"}
    assert table.routes["ten_1/churn-dedicated"].app == dedicated["name"]
    assert table.routes["ten_1/churn-shared"].timeout_s == 30.0
    RuntimeConfig.model_validate(dedicated["args"])
    assert dedicated["deployments"][0]["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_autoscaling_is_rendered_only_when_replicas_may_vary(tmp_path: Path) -> None:
    scaling = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2.0}
    config = _rendered(_settings(tmp_path), [_deployment("dedicated", autoscaling=scaling)])
    server = config["applications"][1]["deployments"][0]
    assert "num_replicas" not in server
    assert server["autoscaling_config"]["max_replicas"] == 3


def test_a_config_serve_would_refuse_is_refused_when_rendered(tmp_path: Path) -> None:
    broken = _deployment("dedicated", resources={"num_cpus": -1.0, "num_gpus": 0.0})
    with pytest.raises(ValidationError, match="num_cpus"):
        _rendered(_settings(tmp_path), [broken])
    with pytest.raises(ValidationError, match="worker_memory_mb"):
        _rendered(_settings(tmp_path, worker_memory_mb=16), [_deployment("shared")])


def test_the_control_plane_does_not_import_ray_before_the_cluster_starts() -> None:
    """Ray reads its token settings once, when first imported; ``cluster.local`` sets
    them just before it starts Ray, so nothing the control plane imports may load Ray."""
    code = (
        "import sys, control_plane.cli, control_plane.app, control_plane.deployment.render;"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
