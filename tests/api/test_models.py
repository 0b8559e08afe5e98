"""The model registry: models, versions validated in a sandbox, aliases, deletion."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from serve_apps.runtime import FORMATS
from tests.api.registry import (
    assert_nothing_left,
    blobs,
    new_model,
    problem,
    rows,
    upload,
    validated,
)
from tests.api.world import World
from tests.models import MAKERS, broken_onnx, onnx

HEAVY = {"keras", "tf-savedmodel", "torchscript", "torch-export"}  # framework imports: seconds


@pytest.mark.parametrize(
    "fmt", [pytest.param(f, marks=pytest.mark.slow) if f in HEAVY else f for f in FORMATS]
)
def test_each_format_is_validated_then_ready(world: World, tmp_path: Path, fmt: str) -> None:
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token, framework="other")
    path, signature, _ = MAKERS[fmt](tmp_path)
    response = upload(api, token, model["id"], path, fmt, signature=signature, tags='{"team": "a"}')
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "validating"
    assert created["version"] == 1
    assert created["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert created["size_bytes"] == path.stat().st_size
    assert created["created_by"] == world.acme["developer"].id
    assert created["tags"] == {"team": "a"}
    version = validated(api, token, model["id"], 1)
    assert version["status"] == "ready", version["error"]
    assert version["input_schema"][0]["dtype"] == "float32"
    assert version["validated_at"] is not None


def test_versions_are_numbered_and_aliases_move(world: World, tmp_path: Path) -> None:
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token)
    base = f"/api/v1/models/{model['id']}"
    for n in (1, 2):
        folder = tmp_path / str(n)
        folder.mkdir()
        answer = upload(api, token, model["id"], onnx(folder)[0], "onnx", wait=True)
        assert answer.status_code == 201, answer.text
        assert (answer.json()["version"], answer.json()["status"]) == (n, "ready")
    assert api.call("PUT", f"{base}/aliases/champion", token, json={"version": 1}).json() == {
        "model_id": model["id"],
        "alias": "champion",
        "version": 1,
    }
    api.call("PUT", f"{base}/aliases/challenger", token, json={"version": 2})
    api.call("PUT", f"{base}/aliases/champion", token, json={"version": 2})  # promote
    assert api.get(base, token).json()["aliases"] == {"champion": 2, "challenger": 2}
    assert api.get(f"{base}/versions/2", token).json()["aliases"] == ["challenger", "champion"]
    # a version an alias points to stays until the alias moves
    problem(api.delete(f"{base}/versions/2", token), 409, "conflict")
    assert api.delete(f"{base}/aliases/challenger", token).status_code == 204
    api.call("PUT", f"{base}/aliases/champion", token, json={"version": 1})
    assert api.delete(f"{base}/versions/2", token).status_code == 204
    problem(api.get(f"{base}/versions/2", token), 404)
    assert len(blobs(api, world.acme.id)) == 1  # version 2's artifact is purged
    # numbers are never reused
    again = upload(api, token, model["id"], onnx(tmp_path)[0], "onnx")
    assert again.json()["version"] == 3
    assert [v["version"] for v in api.get(f"{base}/versions", token).json()["items"]] == [1, 3]
    assert api.get(base, token).json()["latest_version"] == 3


def test_aliases_point_only_at_ready_versions(world: World, tmp_path: Path) -> None:
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token)
    base = f"/api/v1/models/{model['id']}"
    upload(api, token, model["id"], broken_onnx(tmp_path), "onnx")
    assert validated(api, token, model["id"], 1)["status"] == "failed"
    problem(api.call("PUT", f"{base}/aliases/champion", token, json={"version": 1}), 409)
    problem(api.call("PUT", f"{base}/aliases/champion", token, json={"version": 9}), 404)
    problem(api.call("PUT", f"{base}/aliases/Not_A_Slug", token, json={"version": 1}), 422)
    problem(api.delete(f"{base}/aliases/champion", token), 404)


def test_names_are_unique_per_tenant_and_models_can_be_renamed(world: World) -> None:
    api = world.api
    token = world.acme["developer"].token
    first = new_model(api, token, "churn")
    body = problem(
        api.post("/api/v1/models", token, json={"name": "churn", "framework": "onnx"}), 409
    )
    assert "already exists" in body["detail"]
    new_model(api, world.globex["owner"].token, "churn")  # another tenant may use it
    second = new_model(api, token, "fraud")
    problem(api.patch(f"/api/v1/models/{second['id']}", token, json={"name": "churn"}), 409)
    renamed = api.patch(
        f"/api/v1/models/{first['id']}", token, json={"name": "churn-v2", "tags": {"a": "b"}}
    )
    assert (renamed.json()["name"], renamed.json()["tags"]) == ("churn-v2", {"a": "b"})
    names = [m["name"] for m in api.get("/api/v1/models", token).json()["items"]]
    assert names == ["churn-v2", "fraud"]


def test_viewers_read_but_do_not_write(world: World) -> None:
    api = world.api
    model = new_model(api, world.acme["developer"].token)
    viewer = world.acme["viewer"].token
    assert api.get(f"/api/v1/models/{model['id']}", viewer).status_code == 200
    problem(api.delete(f"/api/v1/models/{model['id']}", viewer), 403)
    problem(upload(api, viewer, model["id"], b"x", "onnx"), 403)


def test_deleting_a_model_purges_its_artifacts_but_not_shared_ones(
    world: World, tmp_path: Path
) -> None:
    api, token = world.api, world.acme["developer"].token
    path = onnx(tmp_path)[0]
    keep, drop = new_model(api, token, "keep"), new_model(api, token, "drop")
    for model in (keep, drop):  # the same content: one blob, used twice
        assert upload(api, token, model["id"], path, "onnx", wait=True).status_code == 201
    assert len(blobs(api, world.acme.id)) == 1
    assert api.delete(f"/api/v1/models/{drop['id']}", token).status_code == 204
    assert len(blobs(api, world.acme.id)) == 1
    assert api.delete(f"/api/v1/models/{keep['id']}", token).status_code == 204
    assert_nothing_left(api, world.acme.id)
    assert rows(api, "models", world.acme.id) == 0
    problem(api.get(f"/api/v1/models/{keep['id']}", token), 404)


def test_stored_bytes_show_in_the_storage_quota(world: World, tmp_path: Path) -> None:
    api, token = world.api, world.acme["owner"].token
    path = onnx(tmp_path)[0]
    model = new_model(api, token)
    upload(api, token, model["id"], path, "onnx", wait=True)
    quotas = {q["name"]: q for q in api.get("/api/v1/quotas", token).json()["items"]}
    assert quotas["storage_gb"]["used"] == pytest.approx(path.stat().st_size / 1e9)


def test_registry_changes_are_events(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="control_plane.model.validation")
    api, token = world.api, world.acme["owner"].token
    model = new_model(api, token)
    upload(api, token, model["id"], onnx(tmp_path)[0], "onnx", wait=True)
    upload(api, token, model["id"], broken_onnx(tmp_path), "onnx")
    validated(api, token, model["id"], 2)
    events = api.get("/api/v1/events", token, params={"limit": 200}).json()["items"]
    seen = [(e["type"], e["data"].get("version")) for e in events if e["type"].startswith("model")]
    assert seen == [
        ("model.created", None),
        ("model_version.ready", 1),
        ("model_version.failed", 2),
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "control_plane.model.validation"]
    assert any("v1) validated: ready" in line for line in logged), logged
    assert any("v2) rejected: " in line for line in logged), logged


@pytest.mark.parametrize("fmt", ["xgboost", "sklearn-skops"])
def test_a_signature_is_inferred_from_the_artifact(world: World, tmp_path: Path, fmt: str) -> None:
    api, token = world.api, world.acme["developer"].token
    model = new_model(api, token, framework="other")
    path, _, _ = MAKERS[fmt](tmp_path)
    assert upload(api, token, model["id"], path, fmt).status_code == 201
    version = validated(api, token, model["id"], 1)
    assert version["status"] == "ready", version["error"]
    assert version["signature_inferred"] is True
    assert version["input_schema"] == [{"name": "x", "dtype": "float32", "shape": [-1, 4]}]
