"""Sandboxed runtime workers as the platform sees them: one tenant each, started on
demand, reaped when idle, replaced when they die or break a limit.

A ``Worker`` speaks ``wire`` frames over a Unix socket from the event loop without ever
blocking it (the worker may be hostile: it can stop reading, send garbage or die), and
fails only its own in-flight requests when it goes. A ``WorkerPool`` bounds how many a
replica keeps, evicting the least recently used idle one to make room.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.sandbox import Limits, Sandbox, Sandboxed, Spec
from serve_apps.runtime import wire
from serve_apps.runtime.signature import Signature

log = logging.getLogger("atrium.workers")
Arrays = wire.Arrays


class WorkerError(Exception):
    """The worker answered that it could not do it (the model raised, a bad input…)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind, self.message = kind, message

    def __str__(self) -> str:
        return self.message


class WorkerFailed(Exception):
    """The worker died, broke a limit or was killed; ``limit`` names the limit if one."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message, limit)
        self.message, self.limit = message, limit

    def __str__(self) -> str:
        return self.message


class PredictionTimeout(Exception):
    """A request ran past its deadline; its worker was killed and will be replaced."""


SPARE = "spare"  # the label of a worker owned by no tenant yet


class PoolFull(Exception):
    """Every worker slot of this replica is busy."""


@dataclass(frozen=True)
class WorkerSettings:
    limits: Limits
    max_workers: int = 8
    idle_s: float = 300.0
    start_timeout_s: float = 30.0
    packages: Sequence[str] = ("serve_apps",)
    spares: int = 0  # started ahead, tenant-less, handed to the next new tenant
    warm: Sequence[str] = ()  # formats whose frameworks a worker imports before hello


class Worker:
    def __init__(
        self, tenant_id: str, running: Sandboxed, sock: socket.socket, stderr: Any, memory_mb: int
    ) -> None:
        self.tenant_id, self.memory_mb = tenant_id, memory_mb
        self._running, self._sock, self._stderr = running, sock, stderr
        self._reader = wire.Reader(max_payload=wire.MAX_INLINE)
        self._pending: dict[int, asyncio.Future[wire.Frame]] = {}
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self.failure: WorkerFailed | None = None
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.on_exit: list[Callable[[Worker], None]] = []
        self.reaped: asyncio.Task[Any] | None = None  # once failed: its clean-up
        self._pending[0] = asyncio.get_running_loop().create_future()  # its hello
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    @property
    def alive(self) -> bool:
        return self.failure is None

    async def ready(self, timeout_s: float) -> None:
        await self._wait(0, timeout_s)

    async def load(
        self,
        key: str,
        fmt: str,
        signature: Signature | None,
        artifact_fd: int,
        *,
        allow_pickle: bool = False,
        timeout_s: float | None = None,
    ) -> Signature:
        header = {
            "op": "load",
            "key": key,
            "format": fmt,
            "allow_pickle": allow_pickle,
            "signature": signature.model_dump() if signature else None,
        }
        frame = await self.request(header, fds=[artifact_fd], timeout_s=timeout_s)
        return Signature.model_validate(frame.header.get("signature"))

    async def predict(self, key: str, inputs: Arrays, timeout_s: float) -> Arrays:
        specs, payload, fd = wire.encode(inputs)
        try:
            frame = await self.request(
                {"op": "predict", "key": key, "tensors": specs},
                payload,
                [fd] if fd is not None else [],
                timeout_s=timeout_s,
            )
        finally:
            if fd is not None:
                os.close(fd)
        try:
            return wire.decode(frame.header.get("tensors"), frame.payload, _one(frame.fds))
        except wire.WireError as exc:
            self.fail(WorkerFailed(f"the worker sent a malformed answer: {exc}"))
            raise self.failure or WorkerFailed(str(exc)) from None
        finally:
            for received in frame.fds:
                os.close(received)

    async def bind(self, tenant_id: str, timeout_s: float) -> None:
        """Hand a spare to ``tenant_id`` (it names the tenant in ps from now on)."""
        await self.request({"op": "bind", "tenant": tenant_id}, timeout_s=timeout_s)
        self.tenant_id = tenant_id

    async def unload(self, key: str) -> None:
        with contextlib.suppress(WorkerError, WorkerFailed, PredictionTimeout):
            await self.request({"op": "unload", "key": key}, timeout_s=10)

    async def request(
        self,
        header: dict[str, Any],
        payload: bytes = b"",
        fds: Sequence[int] = (),
        *,
        timeout_s: float | None,
    ) -> wire.Frame:
        if self.failure is not None:
            raise self.failure
        request_id = next(self._ids)
        self._pending[request_id] = asyncio.get_running_loop().create_future()
        self.in_flight += 1
        try:
            data = wire.frame_bytes({**header, "id": request_id, "fds": len(fds)}, payload)
            async with self._send_lock:
                await self._send(data, fds)
            frame = await self._wait(request_id, timeout_s)
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()
        if not frame.header.get("ok"):
            for received in frame.fds:
                os.close(received)
            raise WorkerError(str(frame.header.get("kind")), str(frame.header.get("error"))[:2000])
        return frame

    async def _wait(self, request_id: int, timeout_s: float | None) -> wire.Frame:
        future = self._pending[request_id]
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            # a worker stuck in one prediction is stuck for all: replace it
            if self._running.at_memory_limit():  # thrashing at its cap, not merely slow
                self.fail(self._memory_failure())
                raise self._memory_failure() from None
            self.fail(WorkerFailed("another request to this worker ran past its deadline"))
            raise PredictionTimeout(f"the prediction took longer than {timeout_s:g}s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _send(self, data: bytes, fds: Sequence[int]) -> None:
        loop = asyncio.get_running_loop()
        sent = 0
        while fds and not sent:  # descriptors go with the first bytes, exactly once
            try:
                sent = self._sock.sendmsg([data], wire._rights(fds))
            except BlockingIOError:
                await _writable(loop, self._sock)
            except OSError as exc:
                self.fail(WorkerFailed(f"the worker went away: {exc}"))
                raise self.failure or WorkerFailed(str(exc)) from None
        try:
            await loop.sock_sendall(self._sock, data[sent:])
        except OSError as exc:
            self.fail(WorkerFailed(f"the worker went away: {exc}"))
            raise self.failure or WorkerFailed(str(exc)) from None

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self._sock.recvmsg(
                1 << 20, socket.CMSG_SPACE(wire.MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
            )
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(WorkerFailed(f"the worker's socket failed: {exc}"))
            return
        if not data:
            self.fail(WorkerFailed("the worker exited"))
            return
        try:
            self._reader.feed(data, ancillary)
            frames = self._reader.frames()
        except wire.WireError as exc:
            self.fail(WorkerFailed(f"the worker broke the protocol: {exc}"))
            return
        for frame in frames:
            future = self._pending.get(frame.header.get("id"))  # type: ignore[arg-type]
            if future is None or future.done():
                for fd in frame.fds:
                    os.close(fd)
                continue
            future.set_result(frame)

    def fail(self, failure: WorkerFailed) -> None:
        """Kill the worker (if still running) and fail everything in flight on it."""
        if self.failure is not None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._sock.fileno())
        self._running.kill()
        self.failure = failure
        self.reaped = background(self._reap(failure))

    async def _reap(self, failure: WorkerFailed) -> None:
        await asyncio.to_thread(self._running.process.wait)
        if self._running.limit_hit() == "memory":
            failure.limit, failure.message = "memory", self._memory_failure().message
        for future in self._pending.values():
            if not future.done():
                future.set_exception(failure)
        tail = _tail(self._stderr)
        log.warning("runtime worker of tenant %s ended: %s %s", self.tenant_id, failure, tail)
        self._sock.close()
        self._reader.close()
        self._stderr.close()
        await asyncio.to_thread(self._running.close)
        for callback in self.on_exit:
            callback(self)

    def _memory_failure(self) -> WorkerFailed:
        message = f"the model's worker went past its memory limit ({self.memory_mb} MB)"
        return WorkerFailed(message, "memory")

    def close(self) -> None:
        if self.failure is None:
            self.fail(WorkerFailed("the worker was stopped"))


class WorkerPool:
    """The workers of one replica, one per tenant, at most ``max_workers``."""

    def __init__(self, sandbox: Sandbox, settings: WorkerSettings) -> None:
        self._sandbox, self._settings = sandbox, settings
        self._workers: dict[str, Worker] = {}
        self._starting: dict[str, asyncio.Task[Worker]] = {}
        self.on_exit: list[Callable[[Worker], None]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._spares: list[asyncio.Task[Worker]] = []

    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    async def get(self, tenant_id: str) -> Worker:
        worker = self._workers.get(tenant_id)
        if worker is not None and worker.alive:
            return worker
        task = self._starting.get(tenant_id)
        if task is None:
            self._make_room()
            task = asyncio.get_running_loop().create_task(self._start(tenant_id))
            self._starting[tenant_id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._starting.pop(tenant_id, None)

    def prewarm(self) -> None:
        """Keep ``spares`` workers starting or started, owned by no tenant yet (called
        from the replica's event loop: on its health checks and after each hand-over)."""
        self._spares = [t for t in self._spares if not _dead(t)]
        while len(self._spares) < self._settings.spares:
            self._spares.append(asyncio.get_running_loop().create_task(self._launch(SPARE)))

    def _make_room(self) -> None:
        live = [w for w in self._workers.values() if w.alive]
        if len(live) + len(self._starting) < self._settings.max_workers:
            return
        idle = sorted((w for w in live if w.in_flight == 0), key=lambda w: w.last_used)
        if not idle:
            raise PoolFull("every runtime worker of this replica is busy")
        idle[0].close()

    async def _start(self, tenant_id: str) -> Worker:
        """A worker for a tenant: a spare when one is ready or nearly so (it has run no
        one's code yet, so handing it over is safe), else a new one."""
        worker = await self._take_spare(tenant_id) or await self._launch(tenant_id)
        self._workers[tenant_id] = worker
        self._ensure_reaper()
        if self._settings.spares and len(self._starting) <= 1:
            # replaced at once only when no other tenant is waiting for a worker: in a
            # burst of new tenants a spare's imports would slow their starts; the next
            # health check (every few seconds) tops the spares up instead
            self.prewarm()
        return worker

    async def _take_spare(self, tenant_id: str) -> Worker | None:
        while self._spares:
            task = self._spares.pop(0)
            try:
                worker = await asyncio.shield(task)
            except WorkerFailed:
                continue
            try:
                await worker.bind(tenant_id, self._settings.start_timeout_s)
            except (WorkerFailed, WorkerError, PredictionTimeout):
                worker.close()
                continue
            return worker
        return None

    async def _launch(self, label: str) -> Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the worker's life
        try:
            argv = ["-m", "serve_apps.runtime.worker", str(theirs.fileno()), label]
            if label == SPARE and self._settings.warm:  # a tenant's imports what it loads
                argv.append(",".join(self._settings.warm))
            spec = worker_spec(self._settings, argv, pass_fds=[theirs.fileno()], stderr=stderr)
            running = await asyncio.to_thread(self._sandbox.start, spec)
        except BaseException:
            ours.close()
            stderr.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        worker = Worker(label, running, ours, stderr, self._settings.limits.memory_mb)
        worker.on_exit.append(self._exited)
        try:
            await worker.ready(self._settings.start_timeout_s)
        except (PredictionTimeout, WorkerFailed) as exc:
            worker.close()
            raise WorkerFailed(f"a runtime worker did not start: {exc}") from None
        except BaseException:  # cancelled while starting (the pool closed)
            worker.close()
            raise
        return worker

    def _exited(self, worker: Worker) -> None:
        if self._workers.get(worker.tenant_id) is worker:
            del self._workers[worker.tenant_id]
        for callback in self.on_exit:
            callback(worker)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        while self._workers:
            await asyncio.sleep(min(self._settings.idle_s / 2, 30))
            now = time.monotonic()
            for worker in list(self._workers.values()):
                if worker.in_flight == 0 and now - worker.last_used > self._settings.idle_s:
                    worker.close()

    async def close(self) -> None:
        """Stop every worker, spares included, and wait until each is reaped."""
        workers = list(self._workers.values())
        for task in self._spares:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                workers.append(await task)
        for worker in workers:
            worker.close()
        if self._reaper is not None:
            self._reaper.cancel()
        reaps = [w.reaped for w in workers if w.reaped is not None]
        await asyncio.gather(*reaps, return_exceptions=True)


def worker_spec(settings: WorkerSettings, python_args: Sequence[str], **options: Any) -> Spec:
    """How a runtime worker is sandboxed: the interpreter with ``python_args``."""
    return Spec(
        argv=[sys.executable, *python_args],
        limits=settings.limits,
        packages=settings.packages,
        **{"stdout": subprocess.DEVNULL, **options},
    )


_BACKGROUND: set[asyncio.Task[Any]] = set()


def background(work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``work`` without waiting for it, keeping a reference until it is done."""
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


def _dead(task: asyncio.Task[Worker]) -> bool:
    """A spare that failed to start or has died since."""
    if not task.done():
        return False
    return task.cancelled() or task.exception() is not None or not task.result().alive


def _one(fds: list[int]) -> int | None:
    if len(fds) > 1:
        raise wire.WireError("one shared-memory block at most")
    return fds[0] if fds else None


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(sock.fileno(), ready)
    try:
        await future
    finally:
        loop.remove_writer(sock.fileno())


def _tail(stderr: Any, size: int = 600) -> str:
    with contextlib.suppress(OSError):
        end = os.fstat(stderr.fileno()).st_size
        return os.pread(stderr.fileno(), size, max(0, end - size)).decode(errors="replace")
    return ""
