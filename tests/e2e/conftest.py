"""A real `atrium api` process on a free port, and the CLI next to it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_EMAIL, ATRIUM, PASSWORD, free_port


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATRIUM_")}
    env.update(
        ATRIUM_HOME=str(home),
        ATRIUM_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        ATRIUM_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
        ATRIUM_ARGON2_TIME_COST="2",
        ATRIUM_ARGON2_MEMORY_KIB="19456",
        ATRIUM_ARGON2_PARALLELISM="1",
    )
    return env


def start_api(
    home: Path, *, log: Path | None = None, **settings: str
) -> tuple[str, subprocess.Popen[str]]:
    """`atrium api` on a free port with ``home``, once it answers /readyz; its output in
    a pipe, or in ``log`` (a long-lived server would fill a pipe no one reads)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    out = log.open("a") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(
        [ATRIUM, "api", "--port", str(port)],
        env={**_env(home), **settings},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if log is not None:
        out.close()  # type: ignore[union-attr]  # the child keeps its own copy
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"atrium api did not become ready:\n{proc.communicate()[0]}")
    return base, proc


def stop_api(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    base, proc = start_api(tmp_path / "home")
    yield base, proc
    stop_api(proc)
