"""Ray jobs through Atrium: a trivial job's submit-to-finish time through the control
plane's Jobs API proxy (auth, submission policy, Idempotency-Key, jobs row, the cluster's
Unix socket) against the same Jobs REST calls made straight to the same tenant cluster
(its socket and token, which only the control plane holds). Also the tenant cluster's
cold start (sandboxed `ray start --head` until its Jobs API answers).

Both paths use one client loop: POST /api/jobs/, then GET /api/jobs/{id} every 20 ms
until SUCCEEDED. Printed last: jobs/s proxy / direct (target >= 0.8), and the cold
start (target < 15 s on this machine).

    python -m bench.ray_jobs [--runs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from bench.serving_common import free_port
from control_plane.app import create_app
from control_plane.cli.common import prepare
from control_plane.config import Settings

ADMIN, PASSWORD = "bench@example.com", "a bench passphrase"
ENTRYPOINT = "python -c 'print(1)'"


def one_job(client: httpx.Client, prefix: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = client.post(f"{prefix}/api/jobs/", json={"entrypoint": ENTRYPOINT}, headers=headers)
    answer.raise_for_status()
    sid = answer.json()["submission_id"]
    while True:
        status = client.get(f"{prefix}/api/jobs/{sid}", headers=headers).json()["status"]
        if status == "SUCCEEDED":
            return time.perf_counter() - started
        if status in ("FAILED", "STOPPED"):
            raise RuntimeError(f"the bench job ended {status}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="atrium-bench-jobs-")) / "home"
    settings = Settings(
        home=home,
        bootstrap_admin_email=ADMIN,
        bootstrap_admin_password=PASSWORD,
        argon2_time_cost=2,
        argon2_memory_kib=19456,
        argon2_parallelism=1,
    )
    prepare(settings)  # the home directory and the schema, as `atrium api` makes them
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(timeout=120) as http:
            key, tenant_id = _tenant_key(http, base)
            auth = {"Authorization": f"Bearer {key}"}
            started = time.perf_counter()
            assert http.post(f"{base}/cluster/start", headers=auth).json()["status"] == "running"
            cold = time.perf_counter() - started
            info = asyncio.run(app.state.services.clusters.backend.info(tenant_id))
            direct = httpx.Client(timeout=120, transport=httpx.HTTPTransport(uds=info.socket))
            token = {"Authorization": f"Bearer {info.token}"}
            one_job(http, f"{base}/ray", auth)  # warm: the first job starts the job agent's workers
            one_job(direct, info.address, token)
            proxied, straight = [], []
            for _ in range(args.runs):  # interleaved, so drift hits both alike
                proxied.append(one_job(http, f"{base}/ray", auth))
                straight.append(one_job(direct, info.address, token))
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    p, d = statistics.median(proxied), statistics.median(straight)
    print(f"cold start of a tenant cluster: {cold:.1f} s (target < 15 s)")
    times = f"proxy {p * 1000:.0f} ms, direct {d * 1000:.0f} ms"
    print(f"submit-to-finish, median of {args.runs}: {times}")
    print(f"proxy / direct (jobs/s) = {d / p:.2f} (target >= 0.8)")


def _tenant_key(http: httpx.Client, base: str) -> tuple[str, str]:
    admin = http.post(f"{base}/auth/token", data={"username": ADMIN, "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    tenant = http.post(f"{base}/tenants", json={"name": "Bench", "slug": "bench"}, headers=bearer)
    tenant_id = tenant.json()["id"]
    http.put(f"{base}/tenants/{tenant_id}/plan", json={"plan": "pro"}, headers=bearer)
    owner = {"email": "o@bench.example.com", "password": PASSWORD, "role": "owner"}
    http.post(f"{base}/users", json={**owner, "tenant_id": tenant_id}, headers=bearer)
    signed = http.post(
        f"{base}/auth/token", data={"username": owner["email"], "password": PASSWORD}
    )
    own = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    key = http.post(f"{base}/api-keys", json={"name": "b", "scopes": ["jobs:write"]}, headers=own)
    return key.json()["key"], tenant_id


if __name__ == "__main__":
    main()
