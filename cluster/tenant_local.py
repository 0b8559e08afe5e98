"""Tenant Ray clusters on this machine: one sandboxed Ray head per tenant.

``ray start --head --block`` runs inside the sandbox (bubblewrap, ``cluster/sandbox.py``):
a private ``/tmp`` and ``/dev/shm`` and Ray temp dir, no view of ``ATRIUM_HOME``, the
artifact store or the platform's Ray session, an environment built from an allow-list
plus this cluster's own token, and the plan's CPU and memory both as Ray resources and
as cgroup (or rlimit) caps. The head has a network namespace of its own, with nothing
but loopback: a tenant's job reaches neither the platform's Ray, Postgres or Redis nor
the internet. The control plane reaches the head's dashboard through a Unix socket in
the sandbox's scratch directory (``cluster/relay.py`` joins it to the dashboard's port).
Every port the head and its workers use is still chosen here, distinct from the
platform's and every other cluster's.

The head lives as long as the control plane process (``--die-with-parent``); a head
that exits on its own reads ``failed`` until the next ``ensure`` starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx

from cluster.sandbox import Limits, Sandbox, Sandboxed, Spec
from cluster.tenant import (
    ClusterInfo,
    ClusterShape,
    ClusterStatus,
    ClusterUnavailableError,
    TenantClusters,
)

HOST = "127.0.0.1"
SOCKET = "dashboard.sock"  # in the sandbox's scratch directory
ADDRESS = "http://tenant-cluster"  # the host name means nothing: the socket is the way in
WORKER_PORTS = 32  # the head's worker processes: one port each
START_TIMEOUT_S = 90.0
# Ray's head and its agents run hundreds of threads; the pids cgroup counts threads
HEAD_PIDS = 4096
OBJECT_STORE_MB = 128


@dataclass(frozen=True)
class HeadPorts:
    gcs: int
    dashboard: int
    client: int
    agent_http: int
    agent_grpc: int
    metrics: int
    node_manager: int
    object_manager: int
    runtime_env_agent: int
    workers: tuple[int, int]

    def args(self) -> list[str]:
        return [
            f"--port={self.gcs}",
            f"--dashboard-port={self.dashboard}",
            f"--ray-client-server-port={self.client}",
            f"--dashboard-agent-listen-port={self.agent_http}",
            f"--dashboard-agent-grpc-port={self.agent_grpc}",
            f"--metrics-export-port={self.metrics}",
            f"--node-manager-port={self.node_manager}",
            f"--object-manager-port={self.object_manager}",
            f"--runtime-env-agent-port={self.runtime_env_agent}",
            f"--min-worker-port={self.workers[0]}",
            f"--max-worker-port={self.workers[1]}",
        ]


@dataclass
class _Head:
    shape: ClusterShape
    token: str
    ports: HeadPorts
    process: Sandboxed
    log: IO[bytes]
    started_at: datetime
    ready: bool = False
    error: str | None = None

    @property
    def socket(self) -> str:
        return str(self.process.scratch / SOCKET)


class LocalClusters(TenantClusters):
    """Sandboxed Ray heads, one per tenant, started on demand."""

    def __init__(self, sandbox: Sandbox, *, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self._sandbox = sandbox
        self._start_timeout_s = start_timeout_s
        self._heads: dict[str, _Head] = {}
        self._failed: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._reserved: set[int] = set()

    async def ensure(self, shape: ClusterShape) -> ClusterInfo:
        async with self._locks.setdefault(shape.tenant_id, asyncio.Lock()):
            head = self._heads.get(shape.tenant_id)
            if head is not None and head.process.process.poll() is None and head.ready:
                return self._info(head)
            if head is not None:  # dead, or never became ready: start afresh
                await self._drop(shape.tenant_id)
            head = await self._start(shape)
            self._failed.pop(shape.tenant_id, None)
            return self._info(head)

    async def info(self, tenant_id: str) -> ClusterInfo:
        head = self._heads.get(tenant_id)
        if head is None:
            error = self._failed.get(tenant_id)
            status = ClusterStatus.FAILED if error else ClusterStatus.STOPPED
            return ClusterInfo(tenant_id, status, error=error)
        if head.process.process.poll() is not None:
            error = f"the cluster's head exited ({_exit(head.process)})"
            self._failed[tenant_id] = error
            await self._drop(tenant_id)
            return ClusterInfo(tenant_id, ClusterStatus.FAILED, shape=head.shape, error=error)
        return self._info(head)

    async def stop(self, tenant_id: str) -> None:
        async with self._locks.setdefault(tenant_id, asyncio.Lock()):
            self._failed.pop(tenant_id, None)
            await self._drop(tenant_id)

    async def close(self) -> None:
        for tenant_id in list(self._heads):
            await self._drop(tenant_id)

    def _info(self, head: _Head) -> ClusterInfo:
        return ClusterInfo(
            tenant_id=head.shape.tenant_id,
            status=ClusterStatus.RUNNING if head.ready else ClusterStatus.STARTING,
            shape=head.shape,
            address=ADDRESS,
            token=head.token,
            socket=head.socket,
            started_at=head.started_at,
        )

    async def _start(self, shape: ClusterShape) -> _Head:
        token = secrets.token_hex(32)
        ports = self._allocate()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - the head's lifetime, closed in _drop
        try:
            process = await asyncio.to_thread(
                self._sandbox.start, head_spec(shape, token, ports, log)
            )
        except Exception as exc:
            log.close()
            self._release(ports)
            raise ClusterUnavailableError(f"the cluster could not be started: {exc}") from exc
        head = _Head(shape, token, ports, process, log, started_at=datetime.now(UTC))
        self._heads[shape.tenant_id] = head
        try:
            await self._wait_ready(head)
        except ClusterUnavailableError as exc:
            self._failed[shape.tenant_id] = str(exc)
            await self._drop(shape.tenant_id)
            raise
        head.ready = True
        return head

    async def _wait_ready(self, head: _Head) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        headers = {"Authorization": f"Bearer {head.token}"}
        transport = httpx.AsyncHTTPTransport(uds=head.socket)
        async with httpx.AsyncClient(timeout=2, transport=transport) as client:
            while time.monotonic() < deadline:
                if head.process.process.poll() is not None:
                    raise ClusterUnavailableError(
                        f"the cluster's head exited while starting ({_exit(head.process)}): "
                        f"{_tail(head.log)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(f"{ADDRESS}/api/jobs/", headers=headers)
                    if answer.status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise ClusterUnavailableError(
            f"the cluster did not answer within {self._start_timeout_s:g}s"
        )

    async def _drop(self, tenant_id: str) -> None:
        head = self._heads.pop(tenant_id, None)
        if head is None:
            return
        head.process.kill()
        await asyncio.to_thread(_reap, head.process)
        head.log.close()
        self._release(head.ports)

    # --- ports ---------------------------------------------------------------------

    def _allocate(self) -> HeadPorts:
        names = [f for f in HeadPorts.__dataclass_fields__ if f != "workers"]
        singles = {name: self._free_port() for name in names}
        low = self._free_range(WORKER_PORTS)
        return HeadPorts(**singles, workers=(low, low + WORKER_PORTS - 1))

    def _free_port(self) -> int:
        while True:
            with socket.socket() as sock:
                sock.bind((HOST, 0))
                port: int = sock.getsockname()[1]
            if port not in self._reserved:
                self._reserved.add(port)
                return port

    def _free_range(self, size: int) -> int:
        rng = random.Random()  # noqa: S311 - a port, not a secret
        for _ in range(200):
            low = rng.randrange(20_000, 30_000 - size)
            span = range(low, low + size)
            if not self._reserved.intersection(span) and all(_bindable(p) for p in span):
                self._reserved.update(span)
                return low
        raise ClusterUnavailableError("no free range of ports for the cluster's workers")

    def _release(self, ports: HeadPorts) -> None:
        numbers = [getattr(ports, f) for f in HeadPorts.__dataclass_fields__ if f != "workers"]
        self._reserved.difference_update(numbers)
        self._reserved.difference_update(range(ports.workers[0], ports.workers[1] + 1))


def head_spec(shape: ClusterShape, token: str, ports: HeadPorts, log: IO[bytes]) -> Spec:
    """The sandboxed ``ray start --head --block`` of one tenant's cluster."""
    venv = Path(sys.executable).parent
    argv = [
        sys.executable,
        "-m",
        "cluster.relay",
        f"/scratch/{SOCKET}",
        str(ports.dashboard),
        "--",
        str(venv / "ray"),
        "start",
        "--head",
        "--block",
        f"--node-ip-address={HOST}",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        f"--num-cpus={max(1, int(shape.cpus))}",
        f"--num-gpus={shape.gpus}",
        f"--memory={shape.memory_mb * 1024 * 1024}",
        f"--object-store-memory={OBJECT_STORE_MB * 1024 * 1024}",
        "--temp-dir=/scratch/ray",
        "--disable-usage-stats",
        *ports.args(),
    ]
    limits = Limits(
        memory_mb=shape.memory_mb + OBJECT_STORE_MB,
        cpus=shape.cpus,
        pids=HEAD_PIDS,
        open_files=min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        tmp_mb=OBJECT_STORE_MB * 2,
        file_size_mb=2048,
    )
    env = {
        # `python` in an entrypoint is the platform's interpreter, with Ray and the frameworks
        "PATH": f"{venv}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv.parent),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        # jobs' drivers and workers see this cluster's own CPUs, not the host's
        "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    }
    return Spec(
        argv=argv,
        limits=limits,
        env=env,
        packages=("cluster",),  # the relay
        read_only={str(_hosts_file()): "/etc/hosts"},  # "tenant" (its hostname) is loopback
        network=False,
        stdout=log,  # what `ray start` says; Ray keeps its own logs under /scratch/ray
        stderr=subprocess.STDOUT,
    )


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _exit(process: Sandboxed) -> str:
    code = process.process.returncode
    hit = process.limit_hit()
    return f"limit {hit}" if hit else f"exit status {code}"


def _tail(log: IO[bytes], size: int = 800) -> str:
    log.flush()
    log.seek(0, 2)
    log.seek(max(0, log.tell() - size))
    return log.read().decode(errors="replace").strip()


def _reap(process: Sandboxed) -> None:
    with contextlib.suppress(Exception):
        process.process.wait(timeout=30)
    process.close()


@functools.cache
def _hosts_file() -> Path:
    """An /etc/hosts for the sandbox: with no network, Ray's workers still resolve the
    sandbox's hostname at once instead of waiting on a resolver that is not there."""
    path = Path(tempfile.gettempdir()) / "atrium-sandbox-hosts"
    path.write_text("127.0.0.1 localhost tenant\n::1 localhost\n")
    return path
