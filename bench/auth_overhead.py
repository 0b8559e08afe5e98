"""Cost of authentication on the request path.

One uvicorn worker serves the real app (SQLite, default settings). Under
concurrency 32 we measure requests/s of `GET /api/v1/auth/me` with an API key
and with an access token, against the unauthenticated `GET /healthz` of the same
app (same middleware, logging and metrics) in the same run. The authenticated
route also takes a token from the tenant's API rate bucket (set high enough never
to refuse). Rounds alternate
the three targets so drift hits all of them alike; the median round counts.

Targets (issue 2): API key ≥ 0.5, access token ≥ 0.6 of the baseline.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.loadgen import load

EMAIL, PASSWORD = "root@bench.example.com", "benchmark password 1"
ROUNDS, SECONDS, CONCURRENCY = 3, 4.0, 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATRIUM_")}
    env.update(
        ATRIUM_HOME=str(home),
        ATRIUM_BOOTSTRAP_ADMIN_EMAIL=EMAIL,
        ATRIUM_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
    )
    atrium = str(Path(sys.executable).parent / "atrium")
    proc = subprocess.Popen(
        [atrium, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not start")


def _credentials(base: str) -> tuple[str, str]:
    with httpx.Client(base_url=base, timeout=30) as http:

        def login(email: str) -> str:
            form = {"username": email, "password": PASSWORD}
            token: str = http.post("/api/v1/auth/token", data=form).json()["access_token"]
            return token

        admin = {"Authorization": f"Bearer {login(EMAIL)}"}
        tenant = http.post("/api/v1/tenants", json={"name": "B", "slug": "bench"}, headers=admin)
        # a rate far above what one worker serves: the bucket is checked, never empty
        http.put(
            f"/api/v1/tenants/{tenant.json()['id']}/limits",
            json={"limits": {"api_rps": 1e9}},
            headers=admin,
        )
        user = {"email": "dev@bench.example.com", "password": PASSWORD, "role": "developer"}
        http.post("/api/v1/users", json={**user, "tenant_id": tenant.json()["id"]}, headers=admin)
        token = login(user["email"])
        key = http.post(
            "/api/v1/api-keys",
            json={"name": "bench", "scopes": ["inference"]},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["key"]
        return token, key


def main() -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as home:
        proc = _start(Path(home), port)
        try:
            token, key = _credentials(f"http://127.0.0.1:{port}")
            targets = {
                "baseline GET /healthz (no auth)": ("/healthz", {}),
                "GET /api/v1/auth/me, API key": (
                    "/api/v1/auth/me",
                    {"Authorization": f"Bearer {key}"},
                ),
                "GET /api/v1/auth/me, access token": (
                    "/api/v1/auth/me",
                    {"Authorization": f"Bearer {token}"},
                ),
            }
            rates: dict[str, list[float]] = {name: [] for name in targets}
            for path, headers in targets.values():  # warm caches and connections
                load("127.0.0.1", port, path, headers=headers, seconds=1.0, concurrency=CONCURRENCY)
            for _ in range(ROUNDS):
                for name, (path, headers) in targets.items():
                    result = load(
                        "127.0.0.1",
                        port,
                        path,
                        headers=headers,
                        seconds=SECONDS,
                        concurrency=CONCURRENCY,
                    )
                    if result.errors:
                        raise SystemExit(f"{name}: {result.errors} non-200 responses")
                    rates[name].append(result.rps)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    median = {name: statistics.median(values) for name, values in rates.items()}
    base = median["baseline GET /healthz (no auth)"]
    print(f"one uvicorn worker, concurrency {CONCURRENCY}, {ROUNDS} rounds of {SECONDS}s, median:")
    for name, rps in median.items():
        print(f"  {name:<36} {rps:8.0f} req/s")
    key_ratio = median["GET /api/v1/auth/me, API key"] / base
    token_ratio = median["GET /api/v1/auth/me, access token"] / base
    print(f"ratio API key / baseline:      {key_ratio:.2f}  (target >= 0.50)")
    print(f"ratio access token / baseline: {token_ratio:.2f}  (target >= 0.60)")


if __name__ == "__main__":
    main()
