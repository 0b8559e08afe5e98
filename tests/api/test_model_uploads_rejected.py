"""Bad uploads: each a clear Problem Details answer, and no row or blob left behind."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import pytest

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
from tests.models import MATRIX, broken_onnx, onnx, sklearn, zip_slip


@pytest.fixture
def model(world: World) -> dict[str, Any]:
    return new_model(world.api, world.acme["developer"].token)


def _rejected(
    world: World, model: dict[str, Any], content: Path | bytes, fmt: str, **kw: Any
) -> str:
    """Upload with ?wait=true; the 422's detail, once nothing is left behind."""
    response = upload(
        world.api, world.acme["developer"].token, model["id"], content, fmt, wait=True, **kw
    )
    body = problem(response, 422, "model_rejected")
    assert_nothing_left(world.api, world.acme.id)
    token = world.acme["developer"].token
    assert world.api.get(f"/api/v1/models/{model['id']}", token).json()["latest_version"] is None
    detail: str = body["detail"]
    return detail


def test_wrong_format_declared(world: World, model: dict[str, Any], tmp_path: Path) -> None:
    detail = _rejected(world, model, onnx(tmp_path)[0], "xgboost", signature=MATRIX)
    assert "version 1 was not accepted" in detail
    assert "xgboost" in detail.lower()


def test_truncated_file(world: World, model: dict[str, Any], tmp_path: Path) -> None:
    data = onnx(tmp_path)[0].read_bytes()
    detail = _rejected(world, model, data[: len(data) // 2], "onnx")
    assert "onnx" in detail.lower()


def test_pickle_disguised_as_skops(world: World, model: dict[str, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    detail = _rejected(
        world, model, pickle.dumps(LogisticRegression()), "sklearn-skops", signature=MATRIX
    )
    assert "pickle" in detail


def test_zip_slip_savedmodel(world: World, model: dict[str, Any], tmp_path: Path) -> None:
    detail = _rejected(world, model, zip_slip(tmp_path), "tf-savedmodel")
    assert "escapes the archive: ../../escaped.txt" in detail


def test_onnx_graph_failing_at_run_time(
    world: World, model: dict[str, Any], tmp_path: Path
) -> None:
    detail = _rejected(world, model, broken_onnx(tmp_path), "onnx")
    assert "run time" in detail


def test_without_waiting_a_bad_file_becomes_failed_and_its_blob_goes(
    world: World, model: dict[str, Any], tmp_path: Path
) -> None:
    api, token = world.api, world.acme["developer"].token
    assert upload(api, token, model["id"], broken_onnx(tmp_path), "onnx").status_code == 201
    version = validated(api, token, model["id"], 1)
    assert version["status"] == "failed"
    assert "run time" in version["error"]
    # the row stays to say why; the artifact does not (purged just after the status commits)
    deadline = time.monotonic() + 10
    while blobs(api, world.acme.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blobs(api, world.acme.id) == []
    assert api.delete(f"/api/v1/models/{model['id']}/versions/1", token).status_code == 204
    assert_nothing_left(api, world.acme.id)


def test_empty_upload(world: World, model: dict[str, Any]) -> None:
    response = upload(world.api, world.acme["developer"].token, model["id"], b"", "onnx")
    assert "empty" in problem(response, 422, "validation_error")["detail"]
    assert_nothing_left(world.api, world.acme.id)


def test_upload_over_the_plan_limit(world: World, model: dict[str, Any]) -> None:
    api = world.api
    limits = {"limits": {"max_upload_mb": 0.01}}  # 10 kB
    api.call("PUT", f"/api/v1/tenants/{world.acme.id}/limits", world.admin_token, json=limits)
    response = upload(api, world.acme["developer"].token, model["id"], b"x" * 50_000, "onnx")
    assert "0.01 MB" in problem(response, 413, "payload_too_large")["detail"]
    assert_nothing_left(api, world.acme.id)


def test_upload_over_the_storage_quota(world: World, model: dict[str, Any]) -> None:
    api = world.api
    limits = {"limits": {"storage_gb": 0.00002}}  # 20 kB
    api.call("PUT", f"/api/v1/tenants/{world.acme.id}/limits", world.admin_token, json=limits)
    response = upload(api, world.acme["developer"].token, model["id"], b"x" * 50_000, "onnx")
    assert "storage" in problem(response, 413, "storage_quota_exceeded")["detail"]
    assert_nothing_left(api, world.acme.id)


def test_duplicate_model_name(world: World, model: dict[str, Any]) -> None:
    body = {"name": model["name"], "framework": "onnx"}
    response = world.api.post("/api/v1/models", world.acme["developer"].token, json=body)
    assert "already exists" in problem(response, 409, "conflict")["detail"]
    assert rows(world.api, "models", world.acme.id) == 1


def test_a_version_of_another_tenants_model(
    world: World, model: dict[str, Any], tmp_path: Path
) -> None:
    response = upload(
        world.api, world.globex["owner"].token, model["id"], onnx(tmp_path)[0], "onnx"
    )
    problem(response, 404, "not_found")
    assert_nothing_left(world.api, world.acme.id)
    assert_nothing_left(world.api, world.globex.id)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "pickle"}, "arbitrary code"),
        ({"format": "safetensors"}, "unknown format 'safetensors'"),
        ({"format": "torchscript"}, "send a 'signature' field"),
        ({"format": "onnx", "signature": "{not json"}, "not valid JSON"),
        ({"format": "onnx", "colour": "red"}, "colour"),
    ],
)
def test_bad_form_fields(
    world: World, model: dict[str, Any], tmp_path: Path, fields: dict[str, str], message: str
) -> None:
    api, token = world.api, world.acme["developer"].token
    path = sklearn(tmp_path)[0]
    response = api.post(
        f"/api/v1/models/{model['id']}/versions",
        token,
        files={"file": ("m", path.read_bytes())},
        data=fields,
    )
    assert message in problem(response, 422)["detail"]
    assert_nothing_left(api, world.acme.id)


def test_not_multipart_or_no_file(world: World, model: dict[str, Any]) -> None:
    api, token = world.api, world.acme["developer"].token
    url = f"/api/v1/models/{model['id']}/versions"
    problem(api.post(url, token, json={"format": "onnx"}), 415, "unsupported_media_type")
    no_file = api.post(url, token, files={"other": ("x", b"1")}, data={"format": "onnx"})
    assert "'file'" in problem(no_file, 422)["detail"]
    assert_nothing_left(api, world.acme.id)


def test_an_upload_cut_off_midway_leaves_nothing(
    world: World, model: dict[str, Any], tmp_path: Path
) -> None:
    data = onnx(tmp_path)[0].read_bytes()
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="format"\r\n\r\nonnx\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
        + data[:100]  # the connection ends here: no rest of the file, no closing boundary
    )
    response = world.api.post(
        f"/api/v1/models/{model['id']}/versions",
        world.acme["developer"].token,
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert "ended before its closing boundary" in problem(response, 400, "bad_request")["detail"]
    assert_nothing_left(world.api, world.acme.id)
