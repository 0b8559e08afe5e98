"""Dedicated deployments are metered from what the reconciler sees running in the
cluster (replica-seconds x CPUs and GPUs), counted against the plan's monthly hours;
below a live cluster: the reconciler reads a stand-in for Ray's REST adapter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cluster.rest import Application, applications_of
from control_plane.deployment.reconciler import Reconciler
from control_plane.deployment.render import app_of
from control_plane.kit.clock import utcnow
from control_plane.models import Deployment
from control_plane.usage.replicas import ReplicaMeter
from tests.api.registry import new_model, problem, upload
from tests.api.world import Api, World, run_async
from tests.models import onnx


class FakeRay:
    """Ray's Serve REST API as the reconciler reads it: each dedicated app with replicas."""

    def __init__(self) -> None:
        self.replicas: dict[str, list[str]] = {}  # app name -> replica states
        self.configured = True

    async def apply(self, config: dict[str, Any]) -> None:
        """Taken as it is: the replicas are what each test says."""

    async def applications(self) -> dict[str, Application]:
        apps: dict[str, Any] = {
            name: {
                "status": "RUNNING",
                "deployments": {
                    "ModelServer": {"replicas": [{"state": s, "replica_id": "r"} for s in states]}
                },
            }
            for name, states in self.replicas.items()
        }
        apps["atrium-gateway"] = {"status": "RUNNING", "deployments": {}}
        return applications_of({"applications": apps})


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Cluster:
    """One reconciler (one control-plane process) metering through the app's quotas."""

    def __init__(self, api: Api, ray: FakeRay, clock: Clock, tmp_path: Path) -> None:
        self.api, self.ray, self.clock = api, ray, clock
        self.reconciler = Reconciler(
            db=api.services.db,
            settings=api.settings,
            cluster=ray,  # type: ignore[arg-type]
            secrets_file=tmp_path / "secrets.json",
            meter=ReplicaMeter(api.services.quotas, clock=clock),
        )

    def tick(self, at: float) -> None:
        self.clock.now = START + timedelta(seconds=at)
        run_async(self.api, self.reconciler.reconcile_once)


START = utcnow().replace(minute=0, second=0, microsecond=0)  # a slot boundary this month


@pytest.fixture
def dedicated(world: World, tmp_path: Path) -> dict[str, Any]:
    """acme on pro, with a dedicated deployment of half a CPU and half a GPU per replica."""
    api, token = world.api, world.acme["developer"].token
    plan = api.call(
        "PUT", f"/api/v1/tenants/{world.acme.id}/plan", world.admin_token, json={"plan": "pro"}
    )
    assert plan.status_code == 200
    model = new_model(api, token)
    assert upload(api, token, model["id"], onnx(tmp_path)[0], "onnx", wait=True).status_code == 201
    body = {
        "name": "big",
        "model_id": model["id"],
        "version": 1,
        "mode": "dedicated",
        "resources": {"num_cpus": 0.5, "num_gpus": 0.5},
        "autoscaling": {"min_replicas": 1, "max_replicas": 3},
    }
    response = api.post("/api/v1/deployments", token, json=body)
    assert response.status_code == 202, response.text
    deployment: dict[str, Any] = response.json()
    return deployment


def _app(deployment: dict[str, Any]) -> str:
    return app_of(Deployment(id=deployment["id"], mode="dedicated"))


def _used(world: World) -> dict[str, float]:
    run_async(world.api, world.api.services.usage.flush)
    body = world.api.get(
        "/api/v1/usage", world.acme["owner"].token, params={"granularity": "month"}
    )
    return {i["metric"]: i["quantity"] for i in body.json()["items"]}


def _quota(world: World, name: str) -> float:
    items = world.api.get("/api/v1/quotas", world.acme["owner"].token).json()["items"]
    used: float = next(q["used"] for q in items if q["name"] == name)
    return used


def _run(cluster: Cluster, app: str, script: Sequence[tuple[float, int]]) -> None:
    for at, replicas in script:
        cluster.ray.replicas[app] = ["RUNNING"] * replicas + ["STARTING"]
        cluster.tick(at)


# (seconds after START, replicas RUNNING then): each count holds until the next tick
SCRIPT = [(0, 2), (30, 2), (60, 1), (90, 0), (120, 2), (180, 2)]
# replica-seconds: 30x2 + 30x2 + 30x1 + 30x0 + 60x2 = 270
REPLICA_SECONDS = 270


def test_running_replicas_are_metered_as_cpu_and_gpu_seconds(
    world: World, dedicated: dict[str, Any], tmp_path: Path
) -> None:
    cluster = Cluster(world.api, FakeRay(), Clock(START), tmp_path)
    _run(cluster, _app(dedicated), SCRIPT)
    used = _used(world)
    assert used["cpu_seconds"] == REPLICA_SECONDS * 0.5
    assert used["gpu_seconds"] == REPLICA_SECONDS * 0.5
    assert _quota(world, "monthly_cpu_hours") == pytest.approx(REPLICA_SECONDS * 0.5 / 3600)
    assert _quota(world, "monthly_gpu_hours") == pytest.approx(REPLICA_SECONDS * 0.5 / 3600)


def test_two_processes_metering_the_same_replicas_count_them_once(
    world: World, dedicated: dict[str, Any], tmp_path: Path
) -> None:
    ray = FakeRay()
    first = Cluster(world.api, ray, Clock(START), tmp_path)
    second = Cluster(world.api, ray, Clock(START), tmp_path)
    for at, replicas in SCRIPT:
        ray.replicas[_app(dedicated)] = ["RUNNING"] * replicas
        first.tick(at)
        second.tick(at)
    assert _used(world)["cpu_seconds"] == REPLICA_SECONDS * 0.5
    assert _quota(world, "monthly_cpu_hours") == pytest.approx(REPLICA_SECONDS * 0.5 / 3600)


def test_a_blind_spot_is_billed_for_two_minutes_at_most(
    world: World, dedicated: dict[str, Any], tmp_path: Path
) -> None:
    cluster = Cluster(world.api, FakeRay(), Clock(START), tmp_path)
    _run(cluster, _app(dedicated), [(0, 2), (3600, 2)])  # Ray unreachable for an hour
    assert _used(world)["cpu_seconds"] == 120 * 2 * 0.5


def test_over_its_monthly_cpu_hours_a_tenant_cannot_add_dedicated_capacity(
    world: World, dedicated: dict[str, Any], tmp_path: Path
) -> None:
    api, token = world.api, world.acme["developer"].token
    limits = {"limits": {"api_rps": None, "monthly_cpu_hours": 0.03}}  # 108 CPU-seconds
    api.call("PUT", f"/api/v1/tenants/{world.acme.id}/limits", world.admin_token, json=limits)
    _run(Cluster(api, FakeRay(), Clock(START), tmp_path), _app(dedicated), SCRIPT)
    assert _used(world)["cpu_seconds"] == 135  # running ones go on, metered past the limit
    body = {**{k: dedicated[k] for k in ("model_id", "mode", "resources")}, "version": 1}
    refused = api.post("/api/v1/deployments", token, json={**body, "name": "more"})
    detail = problem(refused, 429, "quota_exceeded")
    assert "monthly_cpu_hours" in detail["detail"] and detail["quota"] == "monthly_cpu_hours"
    assert int(refused.headers["retry-after"]) > 0
    url = f"/api/v1/deployments/{dedicated['id']}"
    scale_up = {"autoscaling": {"min_replicas": 1, "max_replicas": 4}}
    problem(api.patch(url, token, json=scale_up), 429, "quota_exceeded")
    scale_down = {"autoscaling": {"min_replicas": 1, "max_replicas": 2}}
    assert api.patch(url, token, json=scale_down).status_code == 202
    shared = {**body, "name": "shared", "mode": "shared"}
    assert api.post("/api/v1/deployments", token, json=shared).status_code == 202
    events = api.get("/api/v1/events", world.acme["owner"].token, params={"limit": 200}).json()
    crossed = [
        e["data"]["percent"]
        for e in events["items"]
        if e["type"] == "quota.threshold" and e["data"]["quota"] == "monthly_cpu_hours"
    ]
    assert sorted(crossed) == [80, 100]


def test_a_deployment_becoming_ready_is_one_log_line(
    world: World, dedicated: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="control_plane.deployment.reconciler")
    cluster = Cluster(world.api, FakeRay(), Clock(START), tmp_path)
    _run(cluster, _app(dedicated), [(0, 1), (30, 1)])
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "control_plane.deployment.reconciler" and dedicated["id"] in r.getMessage()
    ]
    assert len(lines) == 1 and lines[0].endswith("is ready"), lines
