"""A running `atrium up` with one tenant and an unthrottled inference key, for the
serving benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import Result, load
from tests.integration.platform import Client, Platform, tenant_with_key, token
from tests.support import ADMIN_EMAIL


@dataclass
class Stack:
    platform: Platform
    api: Client
    key: str

    def deploy(self, name: str, path: Path, fmt: str, signature: Any = None, **fields: Any) -> None:
        """Upload ``path`` as a new model and deploy it as ``name``; wait until ready."""
        model = self.api("POST", "/models", json={"name": name, "framework": "other"})
        form = {"format": fmt}
        if signature is not None:
            form["signature"] = signature.model_dump_json()
        self.api(
            "POST",
            f"/models/{model['id']}/versions",
            params={"wait": "true"},
            files={"file": (path.name, path.read_bytes())},
            data=form,
        )
        body = {"name": name, "model_id": model["id"], "version": 1, **fields}
        deployment = self.api("POST", "/deployments", json=body)
        while (state := self.api("GET", f"/deployments/{deployment['id']}"))["status"] != "ready":
            assert state["status"] != "failed", state
            time.sleep(0.5)

    def measure(
        self,
        name: str,
        body: bytes,
        *,
        seconds: float,
        concurrency: int,
        headers: dict[str, str] | None = None,
    ) -> Result:
        headers = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        path = f"/v2/models/{name}/infer"
        warm = httpx.post(f"{self.platform.serve}{path}", content=body, headers=headers, timeout=60)
        assert warm.status_code == 200, warm.text[:300]
        port = self.platform.serve_port
        load(
            "127.0.0.1", port, path, headers=headers, body=body, seconds=2, concurrency=concurrency
        )
        return load(
            "127.0.0.1",
            port,
            path,
            headers=headers,
            body=body,
            seconds=seconds,
            concurrency=concurrency,
        )

    def tenant(self, slug: str, plan: str = "pro") -> Stack:
        """Another tenant on the same platform, with its own unthrottled key."""
        scopes = ["inference", "models:write"]
        tenant, _owner, key = tenant_with_key(self.platform.api, slug, scopes, plan=plan)
        admin = Client(self.platform.api, token(self.platform.api, ADMIN_EMAIL))
        admin(
            "PUT",
            f"/tenants/{tenant}/limits",
            json={"limits": {"inference_rps": None, "monthly_predictions": None}},
        )
        return Stack(self.platform, Client(self.platform.api, key), key)


@contextmanager
def running(
    home: Path, *, fast: bool = False, plan: str = "pro", env: dict[str, str] | None = None
) -> Iterator[Stack]:
    extra = {"ATRIUM_SERVE_HIGH_THROUGHPUT": "true"} if fast else {}
    platform = Platform(home, extra_env={**extra, **(env or {})})
    platform.start()
    try:
        yield Stack(platform, Client(platform.api, ""), "").tenant("bench", plan)
    finally:
        platform.stop()


def line(label: str, result: Result) -> str:
    return (
        f"{label:<30} {result.rps:>8.0f} req/s  p50 {result.percentile(50) * 1000:>6.1f} ms"
        f"  p99 {result.percentile(99) * 1000:>6.1f} ms  errors {result.errors}"
    )
