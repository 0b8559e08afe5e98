"""`ray job submit` through Atrium, onto the tenant's own sandboxed Ray cluster (issue 11).

One `atrium api` for the module (no platform Ray cluster needed: tenant clusters are
their own), tenant A's cluster started once by the first submission. The Ray CLI and
``JobSubmissionClient`` are used unmodified, as a user would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import start_api, stop_api
from tests.support import ADMIN_EMAIL, PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")
JOB = """
import os, pathlib, socket, ray
ray.init()
print("NODES", len(ray.nodes()), "CPUS", ray.cluster_resources().get("CPU"))
secrets = [k for k in os.environ if k.startswith("ATRIUM")]
print("ATRIUM_VARS", secrets)
print("HOME_VISIBLE", pathlib.Path(os.environ["PLATFORM_HOME"]).exists())
print("PLATFORM_RAY_TOKEN", pathlib.Path("~/.ray/auth_token").expanduser().exists())
def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False
print("REACHABLE", {p: reachable(p) for p in (5432, 6379, int(os.environ["PLATFORM_PORT"]))})
from ray.util.state import list_actors
print("ACTORS", sorted({a.class_name for a in list_actors()}))

@ray.remote
def square(x):
    return x * x

print("SUM", sum(ray.get([square.remote(i) for i in range(10)])))
"""


@dataclass
class World:
    base: str
    writer: str  # tenant A, jobs:write
    reader: str  # tenant A, jobs:read
    other: str  # tenant B, jobs:write
    home: Path
    admin: str  # a platform admin's access token

    @property
    def address(self) -> str:
        return f"{self.base}/api/v1/ray"

    def ray(
        self, key: str, *args: str, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ATRIUM_"))}
        headers = json.dumps({"Authorization": f"Bearer {key}"})
        command, *rest = args  # the options go before a `--`
        return subprocess.run(
            [RAY, "job", command, "--address", self.address, "--headers", headers, *rest],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base}/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )


def make_world(root: Path) -> tuple[World, subprocess.Popen[str]]:
    """`atrium api` with two tenants on the pro plan and their keys."""
    base, proc = start_api(root / "home", log=root / "api.log", ATRIUM_JOB_POLL_SECONDS="0.5")
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30) as http:
        return _world(http, base, root, proc)


def _world(
    http: httpx.Client, base: str, root: Path, proc: subprocess.Popen[str]
) -> tuple[World, subprocess.Popen[str]]:
    admin = http.post("/auth/token", data={"username": ADMIN_EMAIL, "password": PASSWORD}).json()[
        "access_token"
    ]

    def tenant_keys(slug: str, *scopes: str) -> list[str]:
        bearer = {"Authorization": f"Bearer {admin}"}
        tenant = http.post("/tenants", json={"name": slug, "slug": slug}, headers=bearer).json()
        http.put(f"/tenants/{tenant['id']}/plan", json={"plan": "pro"}, headers=bearer)
        email = f"owner@{slug}.example.com"
        user = {"email": email, "password": PASSWORD, "role": "owner", "tenant_id": tenant["id"]}
        assert http.post("/users", json=user, headers=bearer).status_code == 201
        owner = http.post("/auth/token", data={"username": email, "password": PASSWORD})
        own = {"Authorization": f"Bearer {owner.json()['access_token']}"}
        return [
            http.post("/api-keys", json={"name": s, "scopes": [s]}, headers=own).json()["key"]
            for s in scopes
        ]

    writer, reader = tenant_keys("acme", "jobs:write", "jobs:read")
    (other,) = tenant_keys("globex", "jobs:write")
    return World(base, writer, reader, other, root / "home", admin), proc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made, proc = make_world(tmp_path_factory.mktemp("jobs"))
    yield made
    stop_api(proc)


def _job_dir(tmp_path: Path, world: World, source: str = JOB) -> Path:
    work = tmp_path / "job"
    work.mkdir()
    port = world.base.rsplit(":", 1)[1]
    (work / "train.py").write_text(
        f"import os\nos.environ['PLATFORM_HOME'] = {str(world.home)!r}\n"
        f"os.environ['PLATFORM_PORT'] = {port!r}\n{source}"
    )
    return work


def test_ray_job_submit_runs_on_the_tenants_own_cluster_and_nowhere_else(
    world: World, tmp_path: Path
) -> None:
    done = world.ray(
        world.writer, "submit", "--working-dir", ".", "--", "python", "train.py",
        cwd=_job_dir(tmp_path, world),
    )  # fmt: skip
    followed = done.stdout + done.stderr
    assert done.returncode == 0, followed
    assert "Running entrypoint for job" in followed, followed  # --follow streamed the log
    submission = next(w for w in followed.split("'") if w.startswith("raysubmit_"))
    status = world.ray(world.reader, "status", submission)
    assert "succeeded" in (status.stdout + status.stderr).lower()

    said = world.ray(world.reader, "logs", submission).stdout
    assert "SUM 285" in said, said
    assert "NODES 1 CPUS 4.0" in said, said  # the pro plan's cluster, nothing of the platform's
    assert "ATRIUM_VARS []" in said and "HOME_VISIBLE False" in said, said
    assert "PLATFORM_RAY_TOKEN False" in said, said
    # no network: neither Postgres, Redis nor the control plane on the host's loopback
    assert "REACHABLE {5432: False, 6379: False, " in said and ": True" not in said, said

    # the Atrium API agrees: a job row of kind "ray", succeeded
    with world.api(world.reader) as api:
        rows = _wait_for(api, submission, "succeeded")
        assert rows["kind"] == "ray" and rows["entrypoint"] == "python train.py"
        assert "SUM 285" in api.get(f"/jobs/{rows['id']}/logs").text
        cluster = api.get("/cluster").json()
        assert cluster["status"] == "running" and cluster["resources"]["cpus"] == 4.0

    # another tenant sees none of it
    listed = world.ray(world.other, "list")
    assert submission not in listed.stdout + listed.stderr
    with world.api(world.other) as api:
        assert api.get("/jobs").json()["items"] == []
        for method, path in (
            ("GET", f"/ray/api/jobs/{submission}"),
            ("GET", f"/ray/api/jobs/{submission}/logs"),
            ("POST", f"/ray/api/jobs/{submission}/stop"),
            ("DELETE", f"/ray/api/jobs/{submission}"),
        ):
            answer = api.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"


# Ray's SDK tails logs with aiohttp's ws_connect(ssl=None), which aiohttp deprecates
@pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")
def test_job_submission_client_follows_logs_and_a_failing_job_says_why(world: World) -> None:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(world.address, headers={"Authorization": f"Bearer {world.writer}"})
    source = "import time; [(print('line', i, flush=True), time.sleep(0.5)) for i in range(3)]"
    ok = client.submit_job(entrypoint=f'python -c "{source}"')

    async def tail() -> str:
        return "".join([chunk async for chunk in client.tail_job_logs(ok)])

    followed = asyncio.run(tail())
    assert all(f"line {i}" in followed for i in range(3)), followed

    failing = client.submit_job(entrypoint="python -c \"raise SystemExit('the data is bad')\"")
    with world.api(world.reader) as api:
        row = _wait_for(api, failing, "failed")
    assert "the data is bad" in (row["message"] or "") or "exit code 1" in (row["message"] or "")


def test_the_api_refuses_what_widens_a_jobs_reach(world: World) -> None:
    def submit(key: str, body: dict[str, Any]) -> httpx.Response:
        with world.api(key) as api:
            return api.post("/ray/api/jobs/", json={"entrypoint": "python -c 1", **body})

    no_key = httpx.post(f"{world.address}/api/jobs/", json={"entrypoint": "python -c 1"})
    assert no_key.status_code == 401
    assert submit(world.reader, {}).status_code == 403  # jobs:read cannot submit
    refusals: dict[str, dict[str, Any]] = {
        "runtime_env.pip": {"runtime_env": {"pip": ["requests"]}},
        "runtime_env.image_uri": {"runtime_env": {"image_uri": "evil/image"}},
        "runtime_env.working_dir": {"runtime_env": {"working_dir": "https://evil/x.zip"}},
        "runtime_env.env_vars": {"runtime_env": {"env_vars": {"RAY_ADDRESS": "10.0.0.1:6379"}}},
        "entrypoint_resources": {"entrypoint_resources": {"special": 1}},
        "entrypoint_num_cpus": {"entrypoint_num_cpus": 64},
        "entrypoint_num_gpus": {"entrypoint_num_gpus": 1},
    }
    for field, body in refusals.items():
        answer = submit(world.writer, body)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["field"] == field, answer.json()


def test_a_tenant_whose_cpu_hours_are_spent_gets_429_naming_the_quota(world: World) -> None:
    with world.api(world.other) as api:
        tenant_id = api.get("/auth/me").json()["tenant_id"]
    with world.api(world.admin) as admin:
        limits = {"limits": {"monthly_cpu_hours": 0}}
        assert admin.put(f"/tenants/{tenant_id}/limits", json=limits).status_code == 200
        try:
            with world.api(world.other) as api:
                refused = api.post("/ray/api/jobs/", json={"entrypoint": "python -c 1"})
                assert refused.status_code == 429, refused.text
                assert refused.json()["quota"] == "monthly_cpu_hours"
                assert "Retry-After" in refused.headers
                assert api.post("/cluster/start").status_code == 429
                assert api.get("/cluster").json()["status"] == "stopped"
        finally:
            admin.put(f"/tenants/{tenant_id}/limits", json={"limits": {}})


def test_a_retried_submission_with_the_same_idempotency_key_is_one_job(world: World) -> None:
    body = {"entrypoint": "python -c 'print(42)'", "metadata": {"try": "one"}}
    with world.api(world.writer) as api:
        headers = {"Idempotency-Key": "submit-once-1"}
        first = api.post("/ray/api/jobs/", json=body, headers=headers)
        again = api.post("/ray/api/jobs/", json=body, headers=headers)
        assert first.status_code == again.status_code == 200, first.text
        assert first.json()["submission_id"] == again.json()["submission_id"]
        assert again.headers.get("idempotent-replayed") == "true"
        sid = first.json()["submission_id"]
        assert sum(j["submission_id"] == sid for j in api.get("/jobs").json()["items"]) == 1
        other = api.post("/ray/api/jobs/", json={**body, "metadata": {}}, headers=headers)
        assert other.status_code == 422 and other.json()["code"] == "idempotency_conflict"


def test_the_dashboard_through_a_sign_in_link_shows_this_tenants_jobs_only(
    world: World,
) -> None:
    with world.api(world.reader) as api:
        link = api.post("/ray/dashboard/session").json()
        assert link["expires_in"] == 60
    # no API key: what a browser holds is the cookie
    with httpx.Client(timeout=60, follow_redirects=True) as browser:
        _browse(world, browser, link["url"])
    # another tenant's link leads to its own (stopped) cluster, not this one
    with world.api(world.other) as api, httpx.Client(timeout=60, follow_redirects=True) as theirs:
        landed = theirs.get(api.post("/ray/dashboard/session").json()["url"])
        assert landed.status_code == 404 and "not running" in landed.json()["detail"]


def _browse(world: World, browser: httpx.Client, link: str) -> None:
    assert browser.get(f"{world.address}/dashboard/").status_code == 401
    landed = browser.get(link)  # the sign-in link sets the cookie, then the page
    assert landed.status_code == 200 and "Ray Dashboard" in landed.text
    cookie = browser.cookies.get("atrium_ray_dashboard")
    assert cookie and world.writer not in cookie and world.reader not in cookie
    jobs = browser.get(f"{world.address}/dashboard/api/jobs/").json()
    assert jobs and all(j["submission_id"].startswith("raysubmit_") for j in jobs)
    assert browser.get(f"{world.address}/dashboard/api/authentication_mode").json() == {
        "authentication_mode": "disabled"
    }
    missing = browser.get(f"{world.address}/dashboard/api/jobs/raysubmit_not_here")
    assert missing.status_code == 404  # Ray's own 404, as a Problem
    assert missing.headers["content-type"] == "application/problem+json"
    # the cookie opens the dashboard and nothing else; a forged one opens nothing
    with httpx.Client(cookies={"atrium_ray_dashboard": cookie}) as other_routes:
        assert other_routes.get(f"{world.base}/api/v1/jobs").status_code == 401
    with httpx.Client(cookies={"atrium_ray_dashboard": "x" + cookie}) as forger:
        assert forger.get(f"{world.address}/dashboard/").status_code == 401


def test_a_killed_head_reads_failed_and_the_next_submission_restarts_it(world: World) -> None:
    with world.api(world.writer) as api:
        assert api.post("/cluster/start").json()["status"] == "running"
        heads = subprocess.run(
            ["pgrep", "-f", "ray start --head.*--temp-dir=/scratch/ray"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert heads, "no sandboxed head found"
        for pid in heads:
            os.kill(int(pid), 9)
        deadline = time.monotonic() + 30
        while api.get("/cluster").json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        again = api.post("/ray/api/jobs/", json={"entrypoint": "python -c 'print(1)'"})
        assert again.status_code == 200, again.text
        assert api.get("/cluster").json()["status"] == "running"
        stopped = api.post("/cluster/stop").json()
        assert stopped["status"] == "stopped"


def _wait_for(api: httpx.Client, submission: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        rows = [j for j in api.get("/jobs").json()["items"] if j["submission_id"] == submission]
        if rows and rows[0]["status"] == status:
            row: dict[str, Any] = rows[0]
            return row
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)


def test_a_control_plane_restart_leaves_a_running_job_with_a_truthful_status(
    tmp_path: Path,
) -> None:
    """The local heads die with the control plane; the job says so, not "running"."""
    made, proc = make_world(tmp_path)
    with made.api(made.writer) as api:
        sid = api.post(
            "/ray/api/jobs/", json={"entrypoint": "python -c 'import time; time.sleep(600)'"}
        ).json()["submission_id"]
        _wait_for(api, sid, "running")
    proc.kill()  # a crash, not a shutdown
    proc.communicate()
    base, again = start_api(made.home, log=tmp_path / "api2.log", ATRIUM_JOB_POLL_SECONDS="0.5")
    try:
        with httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {made.reader}"}
        ) as api:
            row = _wait_for(api, sid, "failed")
            assert "not running" in row["message"] and row["ended_at"], row
            assert api.get("/cluster").json()["status"] == "stopped"
    finally:
        stop_api(again)
