"""A running `atrium up` with one tenant and an unthrottled inference key, for the
serving benchmarks: the platform as a user runs it (a real process with its own Ray
head), reached only over HTTP. The integration tests use the same harness
(``tests/integration/platform.py``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import Result, load

ATRIUM = str(Path(sys.executable).parent / "atrium")  # the CLI of this environment
ADMIN_EMAIL = "root@platform.example.com"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        )
        env.update(self.extra_env)  # the caller's settings win
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


FAST = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


@contextmanager
def baseline(script: str, *args: str, fast: bool = False) -> Iterator[int]:
    """A bare Serve baseline of ``bench/`` (``script`` prints "ready" once deployed)
    running on a free port, with HAProxy and throughput mode if ``fast``, until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE")}
    env.update(FAST if fast else {})
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / script), *args, str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def line(label: str, result: Result) -> str:
    return (
        f"{label:<30} {result.rps:>8.0f} req/s  p50 {result.percentile(50) * 1000:>6.1f} ms"
        f"  p99 {result.percentile(99) * 1000:>6.1f} ms  errors {result.errors}"
    )
