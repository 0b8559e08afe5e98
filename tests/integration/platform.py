"""`atrium up` as a user runs it: a real process with its own Ray head, control plane,
reconciler and Serve applications, reached only over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import ADMIN_EMAIL, ATRIUM, PASSWORD, free_port


@dataclass
class Platform:
    home: Path
    api_port: int = field(default_factory=free_port)
    serve_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def serve(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ATRIUM_", "RAY_"))}
        env.update(
            ATRIUM_HOME=str(self.home),
            ATRIUM_API_PORT=str(self.api_port),
            ATRIUM_SERVE_PORT=str(self.serve_port),
            ATRIUM_RAY_DASHBOARD_PORT=str(self.dashboard_port),
            ATRIUM_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
            ATRIUM_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
            ATRIUM_ARGON2_TIME_COST="2",
            ATRIUM_ARGON2_MEMORY_KIB="19456",
            ATRIUM_ARGON2_PARALLELISM="1",
            ATRIUM_RECONCILE_SECONDS="1",
            ATRIUM_PROBE_POLL_SECONDS="0.5",
            **self.extra_env,
        )
        return env

    def start(self, timeout_s: float = 180) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "atrium.log").open("a") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [ATRIUM, "up"], env=self.env(), stdout=log, stderr=subprocess.STDOUT, text=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"atrium up exited:\n{self.log_tail()}")
            if _ok(f"{self.api}/readyz") and _ok(f"{self.serve}/v2/health/ready"):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"atrium up did not become ready:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        path = self.home / "atrium.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Client:
    """The control plane's API with one credential."""

    def __init__(self, api: str, credential: str) -> None:
        self._base = f"{api}/api/v1"
        self._headers = {"Authorization": f"Bearer {credential}"}

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, f"{self._base}{path}", headers=self._headers, timeout=120, **kwargs
        )
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None


def token(api: str, email: str) -> str:
    """An access token for ``email`` from the control plane at ``api``."""
    form = {"username": email, "password": PASSWORD}
    response = httpx.post(f"{api}/api/v1/auth/token", data=form, timeout=30)
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value


def tenant_with_key(
    api: str, slug: str, scopes: list[str], plan: str = "pro"
) -> tuple[str, str, str]:
    """(tenant id, owner access token, API key) of a new tenant on the control plane at
    ``api``, made over HTTP as a platform admin would."""
    admin = Client(api, token(api, ADMIN_EMAIL))
    tenant = admin("POST", "/tenants", json={"name": slug.title(), "slug": slug, "plan": plan})
    email = f"owner@{slug}.example.com"
    admin(
        "POST",
        "/users",
        json={"email": email, "password": PASSWORD, "role": "owner", "tenant_id": tenant["id"]},
    )
    owner = token(api, email)
    key = Client(api, owner)("POST", "/api-keys", json={"name": "k", "scopes": scopes})
    return tenant["id"], owner, key["key"]
