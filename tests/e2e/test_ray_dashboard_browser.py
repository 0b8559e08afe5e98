"""The tenant's Ray dashboard in a real headless Chromium, through Atrium (issue 11).

Debian's ``chromium`` opens the sign-in link as a tenant's browser would: the link sets
the cookie and lands on a page of the dashboard, whose React app then calls the
dashboard's API through the proxy. ``--dump-dom`` prints the page once its scripts ran
(virtual time stands still while requests are pending). The page must be this tenant's
cluster: its job, one node, no Serve (the platform's cluster is the one that runs Serve),
and nothing at all without the sign-in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.e2e import test_ray_jobs
from tests.e2e.test_ray_jobs import World, _wait_for
from tests.support import in_ci

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

world = test_ray_jobs.world  # its module fixture, run here: an `atrium api`, tenants and keys
ENTRYPOINT = "python -c \"print('hello-from-acme')\""
DASHBOARD = "/api/v1/ray/dashboard/"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if in_ci():
            pytest.fail("chromium is not installed (CI=true: .ci/run installs it)", pytrace=False)
        pytest.skip("needs Debian's headless browser: apt-get install -y chromium")
    return found


@pytest.fixture(scope="module")
def submission(world: World) -> str:
    """A finished job of tenant acme, submitted through the proxy as a Ray user would."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(world.address, headers={"Authorization": f"Bearer {world.writer}"})
    submitted = client.submit_job(entrypoint=ENTRYPOINT)
    with world.api(world.reader) as api:
        _wait_for(api, submitted, "succeeded")
    return submitted


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words.extend(data.split())


def text(dom: str) -> str:
    """What the page shows, as words apart (a table cell's text does not run into the next)."""
    reader = _Text()
    reader.feed(dom)
    return " ".join(reader.words)


def page(chromium: str, profile: Path, url: str) -> str:
    """The DOM of ``url`` after its scripts ran, in a browser with ``profile``."""
    shown = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # root in CI; the page is our own dashboard
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    return shown.stdout


def sign_in(world: World, landing: str) -> str:
    with world.api(world.reader) as api:
        link = api.post("/ray/dashboard/session")
    assert link.status_code == 200, link.text
    url: str = link.json()["url"]
    return f"{url}&next={quote(landing, safe='/')}"


def dashboard(dom: str) -> str:
    """What the Ray Dashboard shows, once it ran: not Problem Details, no token prompt."""
    shown = text(dom)
    assert "<title>" in dom and "Ray Dashboard" in shown, dom[:2000]
    assert "urn:atrium:problem" not in dom and "Authentication Token" not in shown, shown
    assert "Overview Jobs Serve Cluster" in shown, shown  # its navigation rendered
    return shown


def test_a_signed_in_browser_sees_the_tenants_job_and_nothing_of_the_platform(
    chromium: str, world: World, submission: str, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    jobs = dashboard(page(chromium, profile, sign_in(world, "#/jobs")))  # lands on Jobs
    assert f"{submission} {ENTRYPOINT} SUCCEEDED" in jobs, jobs
    with world.api(world.reader) as api:
        ours = {j["submission_id"] for j in api.get("/jobs").json()["items"]}
    assert set(re.findall(r"raysubmit_\w+", jobs)) <= ours, jobs  # no one else's

    # the cookie stays with the browser: the dashboard's other pages open directly
    serve = dashboard(page(chromium, profile, f"{world.base}{DASHBOARD}#/serve"))
    assert "Serve not started" in serve, serve  # no application: not the platform's cluster
    nodes = dashboard(page(chromium, profile, f"{world.base}{DASHBOARD}#/cluster"))
    assert "Node Statistics TOTAL x 1 ALIVE x 1" in nodes, nodes
    assert " tenant ALIVE " in nodes, nodes  # the one node's host is the sandbox's hostname


def test_a_browser_without_the_sign_in_gets_401_problem_details(
    chromium: str, world: World, tmp_path: Path
) -> None:
    dom = page(chromium, tmp_path / "fresh", f"{world.base}{DASHBOARD}#/jobs")
    assert "Ray Dashboard" not in dom, dom
    problem = json.loads(text(dom))  # the browser shows the JSON as it came
    assert problem["status"] == 401 and problem["code"] == "unauthorized", problem
    assert "sign-in link" in problem["detail"], problem


def test_the_sign_in_lands_only_on_a_page_of_the_dashboard(world: World) -> None:
    link = sign_in(world, "#/overview")
    landed = httpx.get(link)
    assert landed.status_code == 303
    assert landed.headers["location"] == f"{DASHBOARD}#/overview"
    for elsewhere in ("//evil.example", "https://evil.example/#/jobs", "#/../../jobs", "#x"):
        refused = httpx.get(sign_in(world, elsewhere))
        assert refused.status_code == 422, (elsewhere, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["next"], refused.json()
