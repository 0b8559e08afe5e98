"""The inference gateway and the API answer an error with the same Problem Details:
a code has one status and one title wherever it comes from."""

from __future__ import annotations

import asyncio
import json
import warnings

import pytest
from starlette.requests import Request

from control_plane import errors
from control_plane.kit import problems
from control_plane.kit.context import request_id_var

with warnings.catch_warnings():  # Ray Serve warns about its own use of pydantic (upstream)
    warnings.simplefilter("ignore", DeprecationWarning)
    from serve_apps.gateway import app as gateway

CASES = [
    (errors.PredictionTimeout("the prediction took longer than 2s"), 504, "Prediction timeout"),
    (errors.MemoryLimitExceeded("past its memory limit"), 500, "Memory limit exceeded"),
    (errors.WorkerFailed("the worker exited"), 500, "Worker failed"),
    (errors.PredictionFailed("the model failed"), 500, "Internal server error"),
    (errors.SandboxUnavailable("install bubblewrap"), 503, "Sandbox unavailable"),
    (errors.Overloaded("the deployment's queue is full"), 503, "Overloaded"),
    (errors.NotReady("no version"), 503, "Not ready"),
    (errors.ValidationFailed("input 'x': expected float32"), 422, "Validation error"),
    (errors.NotFound("no deployment named 'm'"), 404, "Not found"),
    (errors.MethodNotAllowed("inference takes POST"), 405, "Method not allowed"),
    (errors.Unauthorized(), 401, "Not authenticated"),
]


def _request() -> Request:
    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer", "headers": []}
    return Request({**scope, "query_string": b""})


@pytest.mark.parametrize(("error", "status", "title"), CASES, ids=[c[0].code for c in CASES])
def test_the_gateway_and_the_api_render_an_error_alike(
    error: errors.AtriumError, status: int, title: str
) -> None:
    from_gateway = gateway._problem(error, _request(), "req_1", {"RateLimit-Remaining": "4"})
    token = request_id_var.set("req_1")
    try:
        from_api = asyncio.run(problems._atrium_error(_request(), error))
    finally:
        request_id_var.reset(token)
    body = json.loads(bytes(from_gateway.body))
    assert body == json.loads(bytes(from_api.body))
    assert (body["status"], body["code"], body["title"]) == (status, error.code, title)
    assert body["type"] == f"urn:atrium:problem:{error.code}"
    assert (body["detail"], body["instance"], body["request_id"]) == (
        str(error),
        "/v2/models/m/infer",
        "req_1",
    )
    assert from_gateway.status_code == from_api.status_code == status
    assert from_gateway.headers["content-type"] == "application/problem+json"
    assert from_gateway.headers["ratelimit-remaining"] == "4"
    for name, value in error.headers.items():
        assert from_gateway.headers[name] == from_api.headers[name] == value


def test_an_overloaded_answer_says_when_to_retry() -> None:
    answer = gateway._problem(errors.Overloaded("full"), _request(), "req_1", {})
    assert answer.headers["retry-after"] == "1"
