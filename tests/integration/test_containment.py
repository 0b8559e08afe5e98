"""Hostile tenant models on a real `atrium up`: each attack is contained in the tenant's
sandboxed worker while another tenant's predictions keep flowing, every one of them
answered. Each test prints the bystander's p99 beside its quiet p99."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from cluster.sandbox import Limits, default_sandbox
from serve_apps.runtime.workers import WorkerSettings, worker_spec
from tests.integration.platform import Platform, token
from tests.integration.test_serving import Tenant
from tests.models import MATRIX, X, hostile_torchscript, onnx, slow_torchscript

pytestmark = [pytest.mark.ray, pytest.mark.slow]


class Bystander:
    """Tenant B predicting steadily on its own shared deployment."""

    def __init__(self, tenant: Tenant, name: str) -> None:
        self.tenant, self.name = tenant, name
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            response = self.tenant.infer(self.name, X[:2])
            self.latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} {response.text[:200]}")
            time.sleep(0.02)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies, 99) * 1000) if self.latencies else 0.0


@pytest.fixture(scope="module")
def bystander(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    tenant = Tenant(platform, "bystander")
    path, _, _ = onnx(tmp_path_factory.mktemp("steady"))
    model = tenant.model("steady", path, "onnx")
    assert tenant.deploy(name="steady", model_id=model["id"], version=1)["status"] == "ready"
    for _ in range(5):  # its worker started and the model loaded: a steady state
        assert tenant.infer("steady", X[:2]).status_code == 200
    with Bystander(tenant, "steady") as quiet:
        time.sleep(3)
    assert not quiet.failures
    print(f"\nbystander quiet p99: {quiet.p99_ms():.1f} ms")
    return tenant


@pytest.fixture(scope="module")
def canary(platform: Platform) -> bytes:
    value = f"CANARY-{secrets.token_hex(8)}".encode()
    (platform.home / "canary.key").write_bytes(value)
    return value


@pytest.fixture(scope="module")
def attacker(platform: Platform, canary: bytes, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    tenant = Tenant(platform, "attacker")
    path = hostile_torchscript(tmp_path_factory.mktemp("hostile"), platform.home / "canary.key")
    model = tenant.model("hostile", path, "torchscript", MATRIX)
    deployment = tenant.deploy(name="hostile", model_id=model["id"], version=1, timeout_ms=3000)
    assert deployment["status"] == "ready", deployment
    roomy = tenant.deploy(name="roomy", model_id=model["id"], version=1, timeout_ms=60000)
    assert roomy["status"] == "ready", roomy
    assert tenant.infer("hostile", X[:2]).status_code == 200
    return tenant


@pytest.fixture
def watched(bystander: Tenant, request: pytest.FixtureRequest) -> Iterator[Bystander]:
    with Bystander(bystander, "steady") as flow:
        yield flow
    print(f"\n{request.node.name}: bystander p99 {flow.p99_ms():.1f} ms over {len(flow.latencies)}")
    assert not flow.failures, flow.failures[:3]
    assert flow.latencies


def _mode(value: float) -> np.ndarray:
    rows = np.zeros((1, 4), dtype=np.float32)
    rows[0, 0] = value
    return rows


def _workers(tenant_id: str) -> list[int]:
    """Pids of the tenant's sandboxed worker processes."""
    return _processes(b"serve_apps.runtime.worker", tenant_id.encode())


def test_a_model_cannot_read_platform_files(
    attacker: Tenant, watched: Bystander, canary: bytes, platform: Platform
) -> None:
    response = attacker.infer("hostile", _mode(1000))
    assert response.status_code == 500, response.text
    numbers = ", ".join(f"{b}.0" for b in canary[:4])
    for text in (response.text, platform.log_tail(2000)):
        assert canary.decode() not in text
        assert numbers not in text
    assert attacker.infer("hostile", X[:2]).status_code == 200


def test_a_model_past_its_memory_cap_is_replaced(attacker: Tenant, watched: Bystander) -> None:
    response = attacker.infer("roomy", _mode(2000))  # a deadline it cannot reach first
    assert response.status_code == 500, response.text
    assert response.json()["code"] == "memory_limit_exceeded", response.text
    assert "memory limit" in response.json()["detail"]
    assert attacker.infer("hostile", X[:2]).status_code == 200


def test_a_spinning_model_meets_its_deadline(attacker: Tenant, watched: Bystander) -> None:
    started = time.monotonic()
    response = attacker.infer("hostile", _mode(3000))
    assert response.status_code == 504, response.text
    assert response.json()["code"] == "prediction_timeout"
    assert time.monotonic() - started < 30
    assert attacker.infer("hostile", X[:2]).status_code == 200


def test_a_killed_worker_is_replaced(attacker: Tenant, watched: Bystander) -> None:
    pids = _workers(attacker.id)
    assert pids, f"the attacker's worker should be running: {_all_workers()}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    responses = [attacker.infer("hostile", X[:2]).status_code for _ in range(3)]
    assert responses[-1] == 200, responses
    assert set(_workers(attacker.id)).isdisjoint(pids)


def test_a_worker_sees_no_secret(attacker: Tenant, watched: Bystander) -> None:
    (pid,) = _workers(attacker.id)[:1]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = [item.split(b"=", 1)[0].decode() for item in environ if item]
    assert names, "the worker has some environment"
    assert not [n for n in names if n.startswith(("RAY_", "ATRIUM_", "AWS_"))], names
    root = Path(f"/proc/{pid}/root")
    visible = {p.name for p in root.iterdir()}
    assert "scratch" in visible and "tmp" in visible


def test_a_worker_cannot_reach_the_platform(platform: Platform, watched: Bystander) -> None:
    code = (
        "import socket,sys\n"
        "for port in map(int, sys.argv[1:]):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=3)\n"
        "        print('connected', port)\n"
        "    except OSError as exc:\n"
        "        print('refused', port, exc)\n"
    )
    ports = [platform.api_port, platform.dashboard_port, platform.serve_port]
    settings = WorkerSettings(Limits(wall_s=30))
    spec = worker_spec(settings, ["-c", code, *map(str, ports)], stdout=-1)
    done = default_sandbox().run(spec)
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 3, done
    assert all(line.startswith("refused") for line in lines), lines
    with socket.create_connection(("127.0.0.1", platform.api_port), timeout=3):
        pass  # the platform itself is up: the refusal was the sandbox's


def test_a_zip_bomb_savedmodel_is_refused_before_extraction(
    attacker: Tenant, platform: Platform, watched: Bystander, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("saved/saved_model.pb", b"")
        with archive.open("saved/variables/variables.data-00000-of-00001", "w") as entry:
            zeros = bytes(1 << 20)
            for _ in range(300):
                entry.write(zeros)
    model = attacker.api("POST", "/models", json={"name": "bomb", "framework": "tensorflow"})
    response = httpx.post(
        f"{platform.api}/api/v1/models/{model['id']}/versions",
        params={"wait": "true"},
        files={"file": ("bomb.zip", bomb.read_bytes())},
        data={"format": "tf-savedmodel"},
        headers={"Authorization": f"Bearer {attacker.key}"},
        timeout=120,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "model_rejected"
    scratch = platform.home / "tmp"
    assert not list(scratch.glob("*")) if scratch.exists() else True


def test_parallel_waiting_uploads_queue_for_the_probe_slots(
    attacker: Tenant, platform: Platform, watched: Bystander, tmp_path: Path
) -> None:
    path = slow_torchscript(tmp_path)
    model = attacker.api("POST", "/models", json={"name": "slow", "framework": "torch"})
    seen: list[int] = []
    answered: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            # this platform's probes only: another run on the machine has its own
            assert platform.process is not None
            ours = _descendants(platform.process.pid)
            seen.append(len(set(_processes(b"serve_apps.runtime.probe")) & ours))
            started = time.perf_counter()
            token(platform.api, "owner@attacker.example.com")
            answered.append(time.perf_counter() - started)
            time.sleep(0.1)

    def upload(_: int) -> int:
        fields = {"format": "torchscript", "signature": MATRIX.model_dump_json()}
        response = httpx.post(
            f"{platform.api}/api/v1/models/{model['id']}/versions",
            params={"wait": "true"},
            files={"file": (path.name, path.read_bytes())},
            data=fields,
            headers={"Authorization": f"Bearer {attacker.key}"},
            timeout=600,
        )
        return response.status_code

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(upload, range(20)))
    done.set()
    watcher.join(timeout=60)
    assert statuses == [201] * 20, statuses
    assert max(seen) <= 1, seen  # ATRIUM_PROBE_CONCURRENCY (1)
    assert answered and max(answered) < 10, answered
    print(f"\nlogin while 20 validations queue: slowest {max(answered) * 1000:.0f} ms")


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the field after the command name (which may hold spaces) is the state, then ppid
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, changed = {root}, True
    while changed:
        grown = found | {pid for pid, ppid in parents.items() if ppid in found}
        changed, found = grown != found, grown
    return found


def _all_workers() -> list[bytes]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            raw = entry.read_bytes()
            if b"runtime.worker" in raw:
                found.append(raw)
    return found


def _processes(*markers: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # a worker handed over from the spares is renamed (one string, spaces)
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        # the interpreter itself, not the launcher (sh, prlimit, bwrap) that names it too
        if argv and all(m in argv for m in markers) and b"python" in argv[0].rsplit(b"/", 1)[-1]:
            found.append(int(entry.name))
    return found
