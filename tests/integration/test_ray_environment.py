"""Atrium's local Ray head inherits no platform setting: its GCS, raylet, dashboard and
the workers the raylet spawns after start-up see only the allow-listed environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CANARIES = {
    "ATRIUM_SECRET_KEY": "canary-secret-key-0123456789abcdef0123456789",
    "ATRIUM_DATABASE_URL": "postgresql://u:canarypw@h/db",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret",
}

# Starts the head as `atrium up` does, runs a task on a fresh worker, and prints what
# that worker and every process Ray started (descendants of this one) see.
SCRIPT = """
import json, os, sys
from cluster import local

local.start(token=sys.argv[1], num_cpus=1, dashboard_port=int(sys.argv[2]))
import ray  # after start(), as in `atrium up`: Ray reads its auth settings on import

@ray.remote
def environment():
    return dict(os.environ)

def children():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found

def described(pid):
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
        name = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return None
    pairs = (item.split("=", 1) for item in raw.split("\\0") if "=" in item)
    return {"pid": pid, "name": name, "environ": dict(pairs)}

worker = ray.get(environment.remote())
processes = [d for d in map(described, children()) if d is not None]
print(json.dumps({
    "worker": worker,
    "processes": processes,
    "driver_kept": os.environ.get("ATRIUM_SECRET_KEY"),
}))
local.stop()
"""


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATRIUM_", "RAY_"))}
    env.update(CANARIES)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "canary-ray-token-" + "0" * 32, str(free_port())],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_a_ray_worker_sees_no_platform_setting(seen: dict[str, Any]) -> None:
    worker: dict[str, str] = seen["worker"]
    assert "PATH" in worker  # the allow-list keeps what Ray needs
    assert [k for k in worker if k.startswith("ATRIUM_")] == []
    leaked = [k for k, v in worker.items() if any(c in v for c in CANARIES.values())]
    assert leaked == []
    assert "AWS_SECRET_ACCESS_KEY" not in worker


def test_no_process_ray_started_inherits_a_secret(seen: dict[str, Any]) -> None:
    processes: list[dict[str, Any]] = seen["processes"]
    names = {p["name"] for p in processes}
    assert {"gcs_server", "raylet"} <= names, names
    for process in processes:
        text = json.dumps(process["environ"])
        assert "ATRIUM_" not in text, process["name"]
        assert not any(c in text for c in CANARIES.values()), process["name"]


def test_the_control_plane_keeps_its_own_settings(seen: dict[str, Any]) -> None:
    assert seen["driver_kept"] == CANARIES["ATRIUM_SECRET_KEY"]
