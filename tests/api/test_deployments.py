"""Deployments as desired state: validated, held to the plan, kept consistent with the
registry. (Serving them on a real cluster is tested in tests/integration.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.registry import new_model, problem, upload, validated
from tests.api.world import Api, World, build_world
from tests.models import broken_onnx, onnx


@pytest.fixture
def served(world: World, tmp_path: Path) -> dict[str, Any]:
    """acme's model with a ready version 1, aliased champion."""
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token)
    assert upload(api, token, model["id"], onnx(tmp_path)[0], "onnx", wait=True).status_code == 201
    api.call("PUT", f"/api/v1/models/{model['id']}/aliases/champion", token, json={"version": 1})
    return model


def _deploy(world: World, **body: Any) -> Any:
    return world.api.post("/api/v1/deployments", world.acme["developer"].token, json=body)


def test_a_deployment_is_accepted_pending_with_its_endpoints(
    world: World, served: dict[str, Any]
) -> None:
    response = _deploy(world, name="churn", model_id=served["id"], alias="champion")
    assert response.status_code == 202, response.text
    deployment = response.json()
    assert deployment["status"] == "pending"  # no cluster answers in these tests
    assert deployment["traffic"] == [{"version": None, "alias": "champion", "weight": 100}]
    assert deployment["resolved"] == [{"version": 1, "weight": 100, "alias": "champion"}]
    assert deployment["endpoints"]["v2"].endswith("/v2/models/churn/infer")
    listed = world.api.get("/api/v1/deployments", world.acme["viewer"].token).json()["items"]
    assert [d["id"] for d in listed] == [deployment["id"]]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"version": 1, "alias": "champion"}, 422, "exactly one of version, alias or traffic"),
        ({}, 422, "exactly one of version, alias or traffic"),
        ({"traffic": [{"version": 1, "weight": 60}]}, 422, "add up to 100"),
        ({"traffic": [{"version": 1, "alias": "x", "weight": 100}]}, 422, "either a version"),
        ({"version": 7}, 404, "no version 7"),
        ({"alias": "nobody"}, 404, "no alias 'nobody'"),
        (
            {"version": 1, "autoscaling": {"min_replicas": 3, "max_replicas": 1}},
            422,
            "min_replicas",
        ),
        ({"version": 1, "preprocess_plugin": "p"}, 422, "plugins"),
    ],
)
def test_bad_deployments_are_refused(
    world: World, served: dict[str, Any], body: dict[str, Any], status: int, detail: str
) -> None:
    response = _deploy(world, name="churn", model_id=served["id"], **body)
    assert detail in problem(response, status)["detail"]
    assert world.api.get("/api/v1/deployments", world.acme["owner"].token).json()["items"] == []


def test_only_ready_versions_deploy(world: World, served: dict[str, Any], tmp_path: Path) -> None:
    token = world.acme["developer"].token
    upload(world.api, token, served["id"], broken_onnx(tmp_path), "onnx")
    assert validated(world.api, token, served["id"], 2)["status"] == "failed"
    response = _deploy(world, name="churn", model_id=served["id"], version=2)
    assert "only ready versions serve" in problem(response, 409)["detail"]


def test_names_are_unique_and_other_tenants_models_unknown(
    world: World, served: dict[str, Any]
) -> None:
    assert _deploy(world, name="churn", model_id=served["id"], version=1).status_code == 202
    problem(_deploy(world, name="churn", model_id=served["id"], version=1), 409)
    foreign = world.api.post(
        "/api/v1/deployments",
        world.globex["owner"].token,
        json={"name": "mine", "model_id": served["id"], "version": 1},
    )
    problem(foreign, 404)


def test_the_plan_caps_deployments_and_dedicated_replicas(
    world: World, served: dict[str, Any]
) -> None:
    world.api.call(
        "PUT",
        f"/api/v1/tenants/{world.acme.id}/plan",
        world.admin_token,
        json={"plan": "free"},
    )
    world.api.call(
        "PUT",
        f"/api/v1/tenants/{world.acme.id}/limits",
        world.admin_token,
        json={"limits": {"api_rps": None}},
    )
    dedicated = _deploy(world, name="big", model_id=served["id"], version=1, mode="dedicated")
    assert "dedicated replicas" in problem(dedicated, 403, "plan_limit_reached")["detail"]
    for name in ("one", "two"):
        assert _deploy(world, name=name, model_id=served["id"], version=1).status_code == 202
    third = _deploy(world, name="three", model_id=served["id"], version=1)
    assert "allows 2 deployments" in problem(third, 403, "plan_limit_reached")["detail"]
    one = world.api.get("/api/v1/deployments", world.acme["owner"].token).json()["items"][0]
    assert (
        world.api.delete(f"/api/v1/deployments/{one['id']}", world.acme["owner"].token).status_code
        == 204
    )
    assert _deploy(world, name="three", model_id=served["id"], version=1).status_code == 202


def test_what_a_deployment_serves_cannot_be_deleted_from_under_it(
    world: World, served: dict[str, Any]
) -> None:
    api, token = world.api, world.acme["developer"].token
    base = f"/api/v1/models/{served['id']}"
    _deploy(world, name="by-alias", model_id=served["id"], alias="champion")
    _deploy(world, name="by-number", model_id=served["id"], version=1)
    assert "by-alias" in problem(api.delete(f"{base}/aliases/champion", token), 409)["detail"]
    assert "by-number" in problem(api.delete(base, token), 409)["detail"]
    problem(api.delete(f"{base}/versions/1", token), 409)


def test_changes_bump_the_generation_and_roll_the_status(
    world: World, served: dict[str, Any], tmp_path: Path
) -> None:
    api, token = world.api, world.acme["developer"].token
    deployment = _deploy(world, name="churn", model_id=served["id"], version=1).json()
    upload(api, token, served["id"], onnx(tmp_path)[0], "onnx", wait=True)
    change = {"traffic": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}
    updated = api.patch(f"/api/v1/deployments/{deployment['id']}", token, json=change)
    assert updated.status_code == 202, updated.text
    assert [t["weight"] for t in updated.json()["resolved"]] == [90, 10]
    problem(api.patch(f"/api/v1/deployments/{deployment['id']}", token, json={"version": 9}), 404)


def test_without_a_cluster_deploying_answers_503(
    make_client: Callable[..., Api], tmp_path: Path
) -> None:
    world = build_world(make_client(ray_dashboard_url=None))
    model = new_model(world.api, world.acme["developer"].token)
    response = _deploy(world, name="churn", model_id=model["id"], version=1)
    assert "no Ray cluster" in problem(response, 503, "cluster_unavailable")["detail"]


def test_the_default_deadline_is_30_s_or_the_plans_cap_when_lower(
    world: World, served: dict[str, Any]
) -> None:
    on_free = _deploy(world, name="free", model_id=served["id"], version=1)
    assert on_free.status_code == 202, on_free.text
    assert on_free.json()["timeout_ms"] == 10_000  # the free plan's max_prediction_timeout_ms
    world.api.call(
        "PUT", f"/api/v1/tenants/{world.acme.id}/plan", world.admin_token, json={"plan": "pro"}
    )
    on_pro = _deploy(world, name="pro", model_id=served["id"], version=1)
    assert on_pro.json()["timeout_ms"] == 30_000
    got = world.api.get(f"/api/v1/deployments/{on_pro.json()['id']}", world.acme["owner"].token)
    assert got.json()["timeout_ms"] == 30_000


def test_the_plan_caps_each_predictions_deadline(world: World, served: dict[str, Any]) -> None:
    api, token = world.api, world.acme["developer"].token
    over = _deploy(world, name="slow", model_id=served["id"], version=1, timeout_ms=10_001)
    assert "max_prediction_timeout_ms" in problem(over, 403, "plan_limit_reached")["detail"]
    problem(_deploy(world, name="slow", model_id=served["id"], version=1, timeout_ms=5), 422)
    deployment = _deploy(world, name="slow", model_id=served["id"], version=1, timeout_ms=250)
    assert deployment.json()["timeout_ms"] == 250
    url = f"/api/v1/deployments/{deployment.json()['id']}"
    refused = api.patch(url, token, json={"timeout_ms": 20_000})
    assert "max_prediction_timeout_ms" in problem(refused, 403, "plan_limit_reached")["detail"]
    assert api.get(url, token).json()["timeout_ms"] == 250
    world.api.call(
        "PUT",
        f"/api/v1/tenants/{world.acme.id}/limits",
        world.admin_token,
        json={"limits": {"api_rps": None, "max_prediction_timeout_ms": 60_000}},
    )
    raised = api.patch(url, token, json={"timeout_ms": 20_000})
    assert raised.status_code == 202, raised.text
    assert raised.json()["timeout_ms"] == 20_000


def test_the_plan_caps_a_dedicated_deployments_cpus_and_gpus(
    world: World, served: dict[str, Any]
) -> None:
    api, token = world.api, world.acme["developer"].token
    api.call(
        "PUT", f"/api/v1/tenants/{world.acme.id}/plan", world.admin_token, json={"plan": "pro"}
    )

    def dedicated(name: str, cpus: float, gpus: float, replicas: int) -> Any:
        resources = {"num_cpus": cpus, "num_gpus": gpus}
        scaling = {"min_replicas": 1, "max_replicas": replicas}
        return _deploy(
            world,
            name=name,
            model_id=served["id"],
            version=1,
            mode="dedicated",
            resources=resources,
            autoscaling=scaling,
        )

    cpus = problem(dedicated("cpus", 8, 0, 5), 403, "plan_limit_reached")  # pro: 32 CPUs each
    assert "max_cpus_per_deployment is 32" in cpus["detail"] and "asks for 40" in cpus["detail"]
    assert cpus["quota"] == "max_cpus_per_deployment"
    gpus = problem(dedicated("gpus", 1, 4, 3), 403, "plan_limit_reached")  # pro: 8 GPUs each
    assert gpus["quota"] == "max_gpus_per_deployment"
    fits = dedicated("fits", 8, 2, 4)
    assert fits.status_code == 202, fits.text
    url = f"/api/v1/deployments/{fits.json()['id']}"
    grown = api.patch(url, token, json={"autoscaling": {"min_replicas": 1, "max_replicas": 5}})
    assert problem(grown, 403, "plan_limit_reached")["quota"] == "max_cpus_per_deployment"
    assert api.get(url, token).json()["autoscaling"]["max_replicas"] == 4
    shared = _deploy(
        world, name="shared", model_id=served["id"], version=1, resources={"num_cpus": 64}
    )
    assert shared.status_code == 202  # shared deployments run on the gateway's replicas
