"""Helpers for registry tests: upload artifacts, wait for validation, look for leftovers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import text

from serve_apps.runtime import Signature
from tests.api.world import Api, run_async


def new_model(api: Api, token: str, name: str = "churn", framework: str = "onnx") -> dict[str, Any]:
    return api.created("/api/v1/models", token, {"name": name, "framework": framework})


def upload(
    api: Api,
    token: str,
    model_id: str,
    content: Path | bytes,
    fmt: str,
    *,
    signature: Signature | None = None,
    wait: bool = False,
    **fields: str,
) -> httpx.Response:
    data = content.read_bytes() if isinstance(content, Path) else content
    name = content.name if isinstance(content, Path) else "artifact"
    form = {"format": fmt, **fields}
    if signature is not None:
        form["signature"] = signature.model_dump_json()
    return api.post(
        f"/api/v1/models/{model_id}/versions",
        token,
        params={"wait": "true"} if wait else None,
        files={"file": (name, data)},
        data=form,
    )


def validated(api: Api, token: str, model_id: str, number: int, timeout: float = 120) -> Any:
    """The version once it is no longer ``validating``."""
    deadline = time.monotonic() + timeout
    while True:
        version = api.get(f"/api/v1/models/{model_id}/versions/{number}", token).json()
        if version["status"] != "validating" or time.monotonic() > deadline:
            return version
        time.sleep(0.1)


def blobs(api: Api, tenant_id: str) -> list[str]:
    """Every object under the tenant's prefix in the store, temporary ones included."""
    listing: list[str] = api.services.artifacts.listing(tenant_id)
    return listing


def rows(api: Api, table: str, tenant_id: str) -> int:
    async def count() -> int:
        async with api.services.db.engine.connect() as conn:
            sql = text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t")  # noqa: S608
            return int((await conn.execute(sql, {"t": tenant_id})).scalar_one())

    found: int = run_async(api, count)
    return found


def assert_nothing_left(api: Api, tenant_id: str) -> None:
    assert blobs(api, tenant_id) == []
    assert rows(api, "model_versions", tenant_id) == 0
    assert rows(api, "datasets", tenant_id) == 0


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body
