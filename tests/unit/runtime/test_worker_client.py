"""The platform's side of a runtime worker, against a worker that misbehaves.

The other end of a real socket pair is played by a thread: a hostile worker (garbage,
silence, hanging up, lying answers) fails only its own requests, within their
deadline and without disturbing the event loop; a well-behaved one (the real
``worker.Worker`` handler) loads and serves a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from cluster.sandbox import Bubblewrap, Limits
from serve_apps.runtime import wire
from serve_apps.runtime import worker as sandboxed
from serve_apps.runtime.workers import (
    PredictionTimeout,
    Worker,
    WorkerError,
    WorkerFailed,
    WorkerPool,
    WorkerSettings,
)
from tests.models import X, sklearn

T = TypeVar("T")
Peer = Callable[[socket.socket], None]
INPUTS = {"x": X[:3]}


class _Process:
    def wait(self, timeout: float | None = None) -> int:
        return -9


class _Running:
    """Stands in for the sandboxed process (``cluster.sandbox.Sandboxed``)."""

    def __init__(self) -> None:
        self.process = _Process()
        self.killed = self.closed = False

    def kill(self) -> None:
        self.killed = True

    def limit_hit(self) -> str | None:
        return None

    def at_memory_limit(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


# --- the other end ---------------------------------------------------------------------


def _requests(sock: socket.socket) -> Iterator[wire.Frame]:
    """The platform's frames, until it hangs up (their descriptors closed after each)."""
    reader = wire.Reader(max_payload=wire.MAX_INLINE)
    try:
        while (frames := wire.recv_frames(sock, reader)) is not None:
            for frame in frames:
                try:
                    yield frame
                finally:
                    for fd in frame.fds:
                        os.close(fd)
    finally:
        reader.close()


def _first_request(sock: socket.socket) -> wire.Frame:
    return next(_requests(sock))


def _drain(sock: socket.socket) -> None:
    while sock.recv(1 << 16):
        pass


def _garbage(data: bytes) -> Peer:
    def peer(sock: socket.socket) -> None:
        _first_request(sock)
        sock.sendall(data)
        _drain(sock)

    return peer


def _silent(sock: socket.socket) -> None:
    _drain(sock)  # reads every request, answers none


def _hangs_up(sock: socket.socket) -> None:
    _first_request(sock)
    sock.close()


def _answers(header: dict[str, Any], payload: bytes = b"", *, shared: bytes | None = None) -> Peer:
    """Answers the first request with ``header`` (and a memfd holding ``shared``: not
    sealed, so the worker could still shrink it under the platform)."""

    def peer(sock: socket.socket) -> None:
        request = _first_request(sock)
        fds = []
        if shared is not None:
            fd = os.memfd_create("lie", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.write(fd, shared)
            fds.append(fd)
        try:
            wire.send(sock, {**header, "id": request.header["id"]}, payload, fds)
        finally:
            for fd in fds:
                os.close(fd)
        _drain(sock)

    return peer


def _well_behaved(sock: socket.socket) -> None:
    """``worker.main``'s loop, on a socket this test owns."""
    handler = sandboxed.Worker()
    wire.send(sock, {"id": 0, "ok": True, "pid": os.getpid()})
    reader = wire.Reader(max_payload=wire.MAX_INLINE)
    while (frames := wire.recv_frames(sock, reader)) is not None:
        for frame in frames:
            header, payload, fds = handler.handle(frame)
            wire.send(sock, {**header, "id": frame.header.get("id")}, payload, fds)
            for sent in fds:
                os.close(sent)
    reader.close()


def _play(peer: Peer, sock: socket.socket) -> None:
    with sock, contextlib.suppress(OSError):  # the platform may hang up first
        peer(sock)


# --- the platform's end ----------------------------------------------------------------


def _against(peer: Peer, scenario: Callable[[Worker, _Running], Awaitable[T]]) -> T:
    """Run ``scenario`` with a Worker whose other end is ``peer``; the event loop must
    report no error, and the worker must be reaped and its socket closed after."""

    async def run() -> T:
        loop = asyncio.get_running_loop()
        loop_errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: loop_errors.append(context))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        thread = threading.Thread(target=_play, args=(peer, theirs), daemon=True)
        thread.start()
        running = _Running()
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the worker closes it when reaped
        worker = Worker("ten_a", running, ours, stderr, 64)  # type: ignore[arg-type]
        exited = asyncio.Event()
        worker.on_exit.append(lambda _: exited.set())
        try:
            return await scenario(worker, running)
        finally:
            worker.close()
            await asyncio.wait_for(exited.wait(), 5)
            await asyncio.to_thread(thread.join, 5)
            assert not thread.is_alive()
            assert running.killed and running.closed
            assert ours.fileno() == -1
            assert not loop_errors, loop_errors

    return asyncio.run(run())


async def _fails_at_once(worker: Worker) -> None:
    started = time.monotonic()
    with pytest.raises(WorkerFailed):
        await worker.predict("m", INPUTS, timeout_s=30)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "data",
    [
        b"\xff" * 64,  # a header length past the limit
        wire.PREFIX.pack(5, 0) + b"{oops",
        wire.PREFIX.pack(2, 0) + b"[]",
        wire.PREFIX.pack(2, wire.MAX_INLINE + 1) + b"{}",
        wire.frame_bytes({"id": 1, "ok": True, "fds": 3}),  # descriptors that never came
    ],
    ids=["huge-header", "not-json", "not-an-object", "huge-payload", "missing-fds"],
)
def test_garbage_fails_the_worker_and_every_later_request(data: bytes) -> None:
    async def scenario(worker: Worker, running: _Running) -> None:
        with pytest.raises(WorkerFailed, match="broke the protocol"):
            await worker.predict("m", INPUTS, timeout_s=10)
        assert not worker.alive
        assert running.killed
        await _fails_at_once(worker)

    _against(_garbage(data), scenario)


def test_silence_meets_the_deadline_and_the_worker_is_replaced() -> None:
    async def scenario(worker: Worker, running: _Running) -> float:
        started = time.monotonic()
        with pytest.raises(PredictionTimeout, match=r"longer than 0\.3s"):
            await worker.predict("m", INPUTS, timeout_s=0.3)
        assert not worker.alive
        assert running.killed
        await _fails_at_once(worker)
        return time.monotonic() - started

    assert 0.3 <= _against(_silent, scenario) < 2


def test_a_worker_that_hangs_up_fails_its_request() -> None:
    async def scenario(worker: Worker, running: _Running) -> None:
        with pytest.raises(WorkerFailed, match="exited"):
            await worker.predict("m", INPUTS, timeout_s=10)
        await _fails_at_once(worker)

    _against(_hangs_up, scenario)


def test_a_worker_gone_before_the_request_fails_it() -> None:
    async def scenario(worker: Worker, running: _Running) -> None:
        await asyncio.sleep(0.05)  # the peer has closed its end
        with pytest.raises(WorkerFailed):
            await worker.predict("m", {"x": np.zeros((100_000, 4), np.float32)}, timeout_s=10)

    _against(lambda sock: None, scenario)


def _tensor(**changes: Any) -> dict[str, Any]:
    return {"name": "y", "dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 8, **changes}


TWO = np.array([1.0, 2.0], np.float32).tobytes()


@pytest.mark.parametrize(
    "peer",
    [
        _answers({"ok": True, "tensors": [_tensor()]}, shared=TWO),  # an unsealed memfd
        _answers({"ok": True, "tensors": [_tensor(shape=[1000], nbytes=4000)]}, TWO),
        _answers({"ok": True, "tensors": [_tensor(shape=[3])]}, TWO),
        _answers({"ok": True, "tensors": [_tensor(offset=4)]}, TWO),
        _answers({"ok": True, "tensors": [_tensor(dtype="|O")]}, TWO),
        _answers({"ok": True, "tensors": "y"}, TWO),
    ],
    ids=["unsealed", "shape", "nbytes", "offset", "object", "not-a-list"],
)
def test_a_lying_answer_fails_the_worker(peer: Peer) -> None:
    async def scenario(worker: Worker, running: _Running) -> None:
        with pytest.raises(WorkerFailed, match="malformed answer"):
            await worker.predict("m", INPUTS, timeout_s=10)
        assert not worker.alive
        await _fails_at_once(worker)

    _against(peer, scenario)


def test_a_model_error_fails_only_that_request() -> None:
    def peer(sock: socket.socket) -> None:
        for n, request in enumerate(_requests(sock)):
            if n == 0:
                wire.send(sock, {"id": request.header["id"], "ok": False, "kind": "model",
                                 "error": "ValueError: two rows only"})  # fmt: skip
            else:
                specs, payload, _ = wire.encode({"y": np.ones(2, np.float32)})
                wire.send(sock, {"id": request.header["id"], "ok": True, "tensors": specs}, payload)

    async def scenario(worker: Worker, running: _Running) -> dict[str, np.ndarray]:
        with pytest.raises(WorkerError, match="two rows only") as failed:
            await worker.predict("m", INPUTS, timeout_s=10)
        assert failed.value.kind == "model"
        assert worker.alive
        return await worker.predict("m", INPUTS, timeout_s=10)

    np.testing.assert_array_equal(_against(peer, scenario)["y"], np.ones(2, np.float32))


def test_a_well_behaved_worker_loads_and_serves_a_model(tmp_path: Path) -> None:
    path, signature, direct = sklearn(tmp_path)
    large = np.repeat(X, 700, axis=0)  # 700 KB: through shared memory both ways

    async def scenario(worker: Worker, running: _Running) -> list[np.ndarray]:
        await worker.ready(5)
        artifact = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            loaded = await worker.load("v1", "sklearn-skops", signature, artifact, timeout_s=10)
        finally:
            os.close(artifact)
        assert [spec.name for spec in loaded.inputs] == ["x"]
        small = await worker.predict("v1", {"x": X[:5]}, timeout_s=10)
        both = await asyncio.gather(
            worker.predict("v1", {"x": large}, timeout_s=10),
            worker.predict("v1", {"x": X}, timeout_s=10),
        )
        with pytest.raises(WorkerError, match="not loaded"):
            await worker.predict("v2", {"x": X[:5]}, timeout_s=10)
        assert worker.alive
        return [small["predictions"], *(answer["predictions"] for answer in both)]

    small, big, whole = _against(_well_behaved, scenario)
    np.testing.assert_array_equal(small, direct(X[:5]))
    np.testing.assert_array_equal(big, direct(large))
    np.testing.assert_array_equal(whole, direct(X))


def test_a_real_sandboxed_worker_serves_through_the_pool(tmp_path: Path) -> None:
    path, signature, direct = sklearn(tmp_path)

    async def run() -> np.ndarray:
        settings = WorkerSettings(Limits(memory_mb=1024), max_workers=1, start_timeout_s=20)
        pool = WorkerPool(Bubblewrap(), settings)
        exited = asyncio.Event()
        pool.on_exit.append(lambda _: exited.set())
        try:
            worker = await pool.get("ten_a")
            artifact = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                await worker.load("v1", "sklearn-skops", signature, artifact, timeout_s=20)
            finally:
                os.close(artifact)
            answer = await worker.predict("v1", {"x": X}, timeout_s=10)
            return answer["predictions"]
        finally:
            await pool.close()
            await asyncio.wait_for(exited.wait(), 10)  # reaped: sandbox and socket gone

    np.testing.assert_array_equal(asyncio.run(run()), direct(X))


def test_a_spare_worker_goes_to_one_new_tenant_and_is_replaced(tmp_path: Path) -> None:
    """A spare has run no one's code: it is handed to the first new tenant (warm), and
    another spare starts for the next; no two tenants ever share a worker."""
    path, signature, direct = sklearn(tmp_path)

    async def run() -> tuple[int, int, int, int, np.ndarray]:
        settings = WorkerSettings(
            Limits(memory_mb=1024), max_workers=4, start_timeout_s=20, spares=1, warm=("sklearn",)
        )
        pool = WorkerPool(Bubblewrap(), settings)
        try:
            pool.prewarm()
            spare = await asyncio.wait_for(asyncio.shield(pool._spares[0]), 20)
            first = await pool.get("ten_a")
            assert first.tenant_id == "ten_a"
            assert _named_in_ps("ten_a")  # the spare now names its tenant
            replacement = await asyncio.wait_for(asyncio.shield(pool._spares[0]), 20)
            second = await pool.get("ten_b")
            artifact = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                await second.load("v1", "sklearn-skops", signature, artifact, timeout_s=20)
            finally:
                os.close(artifact)
            answer = await second.predict("v1", {"x": X}, timeout_s=10)
            pids = [w._running.process.pid for w in (spare, first, replacement, second)]
            return (*pids, answer["predictions"])  # type: ignore[return-value]
        finally:
            await pool.close()

    spare, first, replacement, second, predictions = asyncio.run(run())
    assert first == spare  # the first new tenant got the spare
    assert second == replacement != first  # the next got a fresh one, never a shared one
    np.testing.assert_array_equal(predictions, direct(X))


def _named_in_ps(tenant: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().replace(b"\0", b" ")
            if b"serve_apps.runtime.worker" in argv and argv.rstrip().endswith(tenant.encode()):
                return True
    return False


def test_a_dead_spare_is_skipped(tmp_path: Path) -> None:
    async def run() -> bool:
        settings = WorkerSettings(
            Limits(memory_mb=1024), max_workers=2, start_timeout_s=20, spares=1
        )
        pool = WorkerPool(Bubblewrap(), settings)
        try:
            pool.prewarm()
            spare = await asyncio.wait_for(asyncio.shield(pool._spares[0]), 20)
            spare._running.kill()
            while spare.reaped is None:  # noqa: ASYNC110 - the socket reports its end
                await asyncio.sleep(0.05)
            await spare.reaped
            worker = await pool.get("ten_a")
            return worker is not spare and worker.alive
        finally:
            await pool.close()

    assert asyncio.run(run())
