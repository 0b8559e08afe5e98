"""Inference over real HTTP on a real local Ray cluster, as a user would call it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serve_apps.runtime import load_model
from tests.integration.platform import Client, Platform, tenant_with_key
from tests.models import MATRIX, X, onnx, sklearn, two_rows_only_onnx

pytestmark = [pytest.mark.ray, pytest.mark.slow]


class Tenant:
    def __init__(self, platform: Platform, slug: str, scopes: list[str] | None = None) -> None:
        scopes = scopes or ["inference", "models:write"]
        self.id, self.owner, self.key = tenant_with_key(platform.api, slug, scopes)
        self.api = Client(platform.api, self.key)
        self.platform = platform

    def model(self, name: str, path: Path, fmt: str, signature: Any = None) -> dict[str, Any]:
        model = self.api("POST", "/models", json={"name": name, "framework": "other"})
        fields = {"format": fmt}
        if signature is not None:
            fields["signature"] = signature.model_dump_json()
        self.upload(model["id"], path, fields)
        return dict(model)

    def upload(self, model_id: str, path: Path, fields: dict[str, str]) -> dict[str, Any]:
        files = {"file": (path.name, path.read_bytes())}
        url = f"/models/{model_id}/versions"
        version = self.api("POST", url, params={"wait": "true"}, files=files, data=fields)
        assert version["status"] == "ready", version
        return dict(version)

    def deploy(self, **body: Any) -> dict[str, Any]:
        deployment = self.api("POST", "/deployments", json=body)
        return self.wait(deployment["id"])

    def wait(self, deployment_id: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            deployment = self.api("GET", f"/deployments/{deployment_id}")
            if deployment["status"] in ("ready", "failed"):
                return dict(deployment)
            time.sleep(0.5)
        raise AssertionError(f"deployment still {deployment['status']}")

    def infer(self, name: str, rows: np.ndarray, **kwargs: Any) -> httpx.Response:
        body = _v2(rows)
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        url = f"{self.platform.serve}/v2/models/{name}/infer"
        return httpx.post(url, json=body, headers=headers, timeout=60, **kwargs)


def _v2(rows: np.ndarray) -> dict[str, Any]:
    tensor = {"name": "x", "shape": list(rows.shape), "datatype": "FP32"}
    return {"inputs": [{**tensor, "data": rows.reshape(-1).tolist()}]}


@pytest.fixture(scope="module")
def acme(platform: Platform) -> Tenant:
    return Tenant(platform, "acme")


def _expected(path: Path, fmt: str, signature: Any, rows: np.ndarray) -> np.ndarray:
    model = load_model(fmt, path, signature, device="cpu")
    return next(iter(model.predict({"x": rows}).values()))


def test_shared_and_dedicated_answer_v2_v1_and_tritonclient(
    acme: Tenant, platform: Platform, tmp_path: Path
) -> None:
    import tritonclient.http as triton

    onnx_path = onnx(tmp_path)[0]
    skl_path = sklearn(tmp_path)[0]
    small = acme.model("churn", onnx_path, "onnx")
    trees = acme.model("fraud", skl_path, "sklearn-skops", MATRIX)
    shared = acme.deploy(name="churn", model_id=small["id"], version=1)
    dedicated = acme.deploy(
        name="fraud", model_id=trees["id"], version=1, mode="dedicated",
        resources={"num_cpus": 0.25}, batching={"max_batch_size": 8, "batch_wait_timeout_ms": 2},
    )  # fmt: skip
    assert (shared["status"], dedicated["status"]) == ("ready", "ready"), (shared, dedicated)

    rows = X[:3]
    answer = acme.infer("churn", rows)
    assert answer.status_code == 200, answer.text
    assert answer.headers["ratelimit-limit"] == "200"
    got = np.array(answer.json()["outputs"][0]["data"]).reshape(3, 2)
    np.testing.assert_allclose(got, _expected(onnx_path, "onnx", None, rows), rtol=1e-5)

    v1 = httpx.post(
        f"{platform.serve}/v1/models/fraud:predict",
        json={"instances": rows.tolist()},
        headers={"Authorization": f"Bearer {acme.key}"},
        timeout=60,  # the dedicated replica's first prediction starts its sandboxed worker
    )
    assert v1.status_code == 200, v1.text
    expected = _expected(skl_path, "sklearn-skops", MATRIX, rows)
    assert v1.json()["predictions"] == expected.tolist()

    client = triton.InferenceServerClient(platform.serve.removeprefix("http://"))
    auth = {"Authorization": f"Bearer {acme.key}"}
    assert client.is_server_live(headers=auth)
    assert client.get_server_metadata()["name"] == "atrium"  # an empty body crashed it
    assert client.is_model_ready("fraud", headers=auth)
    assert client.get_model_metadata("churn", headers=auth)["inputs"][0]["shape"] == [-1, 4]
    tensor = triton.InferInput("x", [3, 4], "FP32")
    tensor.set_data_from_numpy(rows)  # binary tensors, the client's default
    result = client.infer("churn", [tensor], headers=auth)
    client.close()
    np.testing.assert_allclose(result.as_numpy("y"), got, rtol=1e-5)


def test_bad_requests_are_named_problems(acme: Tenant, platform: Platform, tmp_path: Path) -> None:
    if "churn" not in {d["name"] for d in acme.api("GET", "/deployments")["items"]}:
        model = acme.model("churn", onnx(tmp_path)[0], "onnx")
        acme.deploy(name="churn", model_id=model["id"], version=1)
    cases = [
        (acme.infer("nothing-here", X[:1]), 404, "no deployment named 'nothing-here'"),
        (acme.infer("churn", X[:2, :3]), 422, "input 'x': expected shape [-1, 4], got [2, 3]"),
        (acme.infer("churn", X[:1], headers={"Authorization": "Bearer nope"}), 401, ""),
        (acme.infer("churn", np.zeros((40_000, 4), np.float32)), 413, "exceeds"),
    ]
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES",
                        "data": ["a", "b", "c", "d"]}]}  # fmt: skip
    wrong_type = httpx.post(
        f"{platform.serve}/v2/models/churn/infer",
        json=body,
        headers={"Authorization": f"Bearer {acme.key}"},
    )
    cases.append((wrong_type, 422, "input 'x': expected float32"))
    reader = Tenant(platform, "readers", ["models:read"])
    cases.append((reader.infer("churn", X[:1]), 403, "the 'inference' scope"))
    other = Tenant(platform, "globex")  # acme's deployment name means nothing to globex
    cases.append((other.infer("churn", X[:1]), 404, "no deployment named 'churn'"))
    for response, status, detail in cases:
        assert response.status_code == status, response.text[:500]
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"]


def test_a_model_that_raises_fails_alone(acme: Tenant, tmp_path: Path) -> None:
    picky = acme.model("picky", two_rows_only_onnx(tmp_path), "onnx")
    acme.deploy(name="picky", model_id=picky["id"], version=1)
    failed = acme.infer("picky", X[:3])
    assert failed.status_code == 500
    assert failed.json()["request_id"] == failed.headers["x-request-id"]
    assert acme.infer("picky", X[:2]).status_code == 200  # the replica keeps serving


def test_canary_weights_pins_and_an_alias_rolling_over(acme: Tenant, tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    model = acme.model("ranker", onnx(first)[0], "onnx")
    acme.upload(model["id"], onnx(second)[0], {"format": "onnx"})
    acme.api("PUT", f"/models/{model['id']}/aliases/champion", json={"version": 1})
    split = acme.deploy(
        name="ranker", model_id=model["id"],
        traffic=[{"alias": "champion", "weight": 50}, {"version": 2, "weight": 50}],
    )  # fmt: skip
    assert split["status"] == "ready"
    seen = {acme.infer("ranker", X[:1]).json()["model_version"] for _ in range(30)}
    assert seen == {"1", "2"}
    pinned = acme.infer("ranker", X[:1], headers={"X-Atrium-Model-Version": "2"})
    assert pinned.json()["model_version"] == "2"
    whole = acme.api("PATCH", f"/deployments/{split['id']}", json={"alias": "champion"})
    acme.wait(whole["id"])
    acme.api("PUT", f"/models/{model['id']}/aliases/champion", json={"version": 2})
    deadline = time.monotonic() + 30
    while acme.infer("ranker", X[:1]).json()["model_version"] != "2":
        assert time.monotonic() < deadline, "the alias move never reached the gateway"
        time.sleep(0.5)
    assert {acme.infer("ranker", X[:1]).json()["model_version"] for _ in range(10)} == {"2"}


def test_one_tenant_over_its_rate_while_another_flows(
    acme: Tenant, platform: Platform, tmp_path: Path
) -> None:
    slow = Tenant(platform, "slowpoke")
    admin_token = _admin_token(platform)
    Client(platform.api, admin_token)(
        "PUT", f"/tenants/{slow.id}/limits", json={"limits": {"inference_rps": 1}}
    )
    model = slow.model("churn", onnx(tmp_path)[0], "onnx")
    slow.deploy(name="churn", model_id=model["id"], version=1)
    codes = [slow.infer("churn", X[:1]).status_code for _ in range(5)]
    assert 429 in codes
    refused = next(
        r for r in (slow.infer("churn", X[:1]) for _ in range(3)) if r.status_code == 429
    )
    assert int(refused.headers["retry-after"]) >= 1
    assert all(acme.infer("churn", X[:1]).status_code == 200 for _ in range(5))


def test_usage_is_metered_and_deleting_frees_the_slot(acme: Tenant, platform: Platform) -> None:
    owner = Client(platform.api, acme.owner)
    time.sleep(3)  # the gateway flushes usage every few seconds
    usage = owner("GET", "/usage", params={"granularity": "month", "metric": "predictions"})
    assert sum(row["quantity"] for row in usage["items"]) >= 3
    quotas = {q["name"]: q for q in owner("GET", "/quotas")["items"]}
    assert quotas["monthly_predictions"]["used"] >= 3
    deployment = next(d for d in acme.api("GET", "/deployments")["items"] if d["name"] == "picky")
    acme.api("DELETE", f"/deployments/{deployment['id']}")
    deadline = time.monotonic() + 30
    while acme.infer("picky", X[:2]).status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_a_killed_replica_under_steady_load(acme: Tenant, tmp_path: Path) -> None:
    model = acme.model("sturdy", onnx(tmp_path)[0], "onnx")
    deployment = acme.deploy(
        name="sturdy", model_id=model["id"], version=1, mode="dedicated",
        resources={"num_cpus": 0.25}, autoscaling={"min_replicas": 2, "max_replicas": 2},
    )  # fmt: skip
    assert deployment["status"] == "ready"
    app = f"atrium-d-{deployment['id'].lower()}"
    stop, codes = threading.Event(), []

    def steady() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(
                    f"{acme.platform.serve}/v2/models/sturdy/infer",
                    json=_v2(X[:1]),
                    headers={"Authorization": f"Bearer {acme.key}"},
                )
                codes.append(response.status_code)

    workers = [threading.Thread(target=steady) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(3)
    replicas = subprocess.run(
        ["pgrep", "-f", f"ServeReplica:{app}"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(replicas) == 2, replicas
    os.kill(int(replicas[0]), signal.SIGKILL)
    time.sleep(6)
    stop.set()
    for worker in workers:
        worker.join()
    failed = sum(code != 200 for code in codes)
    assert len(codes) > 200
    assert failed / len(codes) < 0.01, f"{failed} of {len(codes)} failed"


def test_a_revoked_key_stops_working_at_once(acme: Tenant, platform: Platform) -> None:
    owner = Client(platform.api, acme.owner)
    key = owner("POST", "/api-keys", json={"name": "short-lived", "scopes": ["inference"]})
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert acme.infer("churn", X[:1], headers=headers).status_code == 200  # cached now
    owner("DELETE", f"/api-keys/{key['id']}")
    deadline = time.monotonic() + 5  # well inside the 30 s cache lifetime
    while acme.infer("churn", X[:1], headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the gateway kept accepting a revoked key"
        time.sleep(0.2)


def test_after_a_restart_everything_serves_again(acme: Tenant, platform: Platform) -> None:
    before = {d["name"] for d in acme.api("GET", "/deployments")["items"]}
    platform.stop()
    platform.start()
    for deployment in acme.api("GET", "/deployments")["items"]:
        assert acme.wait(deployment["id"])["status"] == "ready"
    assert {d["name"] for d in acme.api("GET", "/deployments")["items"]} == before
    assert acme.infer("churn", X[:2]).status_code == 200


def _admin_token(platform: Platform) -> str:
    from tests.integration.platform import token
    from tests.support import ADMIN_EMAIL

    return token(platform.api, ADMIN_EMAIL)
