"""A non-editable install works: the wheel carries everything `atrium api` reads at start-up
(the plan catalogue, the migrations), and nothing is read from the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SKIP = ("tests", "bench", ".*", "*.egg-info", "build", "dist", "__pycache__", "*.db")


def _wheel(work: Path) -> Path:
    """Build the wheel from a copy of the sources, offline, with this environment's setuptools."""
    source = work / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SKIP))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run(
        [*pip, *build, "-w", str(work / "dist"), str(source)],
        check=True,
        timeout=240,
    )
    shutil.rmtree(source)  # the installed copy must not lean on it
    (wheel,) = (work / "dist").glob("atrium-*.whl")
    return wheel


def _install(wheel: Path, target: Path) -> None:
    """Only Atrium itself: its dependencies come from this environment (no download)."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        check=True,
        timeout=120,
    )


def _env(work: Path, site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATRIUM_")}
    env.update(PYTHONPATH=str(site), ATRIUM_HOME=str(work / "home"), ATRIUM_LOG_LEVEL="WARNING")
    return env


def test_the_installed_wheel_starts_and_answers(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install(_wheel(tmp_path), site)
    env = _env(tmp_path, site)
    where = subprocess.run(
        [sys.executable, "-c", "import control_plane; print(control_plane.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))  # not the editable source tree
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(site / "bin" / "atrium"), "api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}", server)
        assert ready.json()["status"] == "ready"  # migrations shipped, plans loaded
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        server.kill()
        server.communicate()


def _wait_ready(base: str, server: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            response = httpx.get(f"{base}/readyz")
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.kill()
    pytest.fail(f"the installed `atrium api` did not start:\n{server.communicate()[0]}")
