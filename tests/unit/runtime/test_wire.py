"""What crosses the platform/worker boundary: tensors round-trip exactly, inline or in
sealed shared memory, and whatever else arrives is refused as a WireError."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from serve_apps.runtime import wire

SAMPLES: wire.Arrays = {
    "f": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "i": np.array([[-(2**40), 0, 2**40]], dtype=np.int64),
    "b": np.array([True, False, True]),
    "s": np.array(["churn", "stay", "naïve"], dtype=object),
    "raw": np.array([b"\x00\xff", b"ok"], dtype=object),
    "scalar": np.array(3.5, dtype=np.float64),
}


def _round_trip(arrays: wire.Arrays) -> tuple[wire.Arrays, int | None]:
    specs, payload, fd = wire.encode(arrays)
    try:
        return wire.decode(json.loads(json.dumps(specs)), payload, fd), fd
    finally:
        if fd is not None:
            os.close(fd)


def _assert_same(got: wire.Arrays, sent: wire.Arrays) -> None:
    assert list(got) == list(sent)
    for name, value in sent.items():
        assert got[name].shape == value.shape, name
        assert got[name].dtype == value.dtype, name
        np.testing.assert_array_equal(got[name], value)


def test_small_tensors_round_trip_inline() -> None:
    got, fd = _round_trip(SAMPLES)
    assert fd is None
    _assert_same(got, SAMPLES)


def test_large_tensors_round_trip_through_sealed_shared_memory() -> None:
    rng = np.random.default_rng(0)
    large: wire.Arrays = {
        "big": rng.normal(size=(40_000, 4)).astype(np.float32),  # 640 KB
        "small": rng.integers(-100, 100, size=1000, dtype=np.int16),
        **SAMPLES,
    }
    specs, payload, fd = wire.encode(large)
    assert fd is not None
    assert payload == b""
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
        _assert_same(wire.decode(specs, payload, fd), large)
    finally:
        os.close(fd)


def _spec(**changes: Any) -> dict[str, Any]:
    return {"name": "x", "dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 8, **changes}


BLOCK = np.array([1.0, 2.0], dtype=np.float32).tobytes()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_spec(dtype="|O"), "not allowed"),
        (_spec(dtype="|O8"), "not allowed"),
        (_spec(dtype="|V8", shape=[1]), "not allowed"),
        (_spec(dtype="<M8[ns]", shape=[1]), "not allowed"),
        (_spec(shape=[3]), "does not match"),
        (_spec(nbytes=4), "does not match"),
        (_spec(shape=[4], nbytes=16), "does not match"),
        (_spec(offset=4), "does not match"),
        (_spec(offset=1 << 40), "does not match"),
        (_spec(offset=-8), "integers"),
        (_spec(shape=[-1]), "non-negative"),
        (_spec(shape="2"), "non-negative"),
        (_spec(name=7), "'name'"),
        ("x", "'name'"),
    ],
)
def test_a_lying_tensor_description_is_refused(spec: Any, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode([spec], BLOCK, None)


def test_descriptions_must_be_a_list() -> None:
    with pytest.raises(wire.WireError, match="list"):
        wire.decode({"x": _spec()}, BLOCK, None)


def _memfd(data: bytes, *, seals: int) -> int:
    fd = os.memfd_create("test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


@pytest.mark.parametrize(
    "seals",
    [0, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW],
)
def test_shared_memory_that_could_still_change_is_refused(seals: int) -> None:
    fd = _memfd(BLOCK, seals=seals)
    try:
        with pytest.raises(wire.WireError, match="sealed"):
            wire.decode([_spec()], b"", fd)
    finally:
        os.close(fd)


def test_a_tensor_past_its_shared_block_is_refused() -> None:
    fd = _memfd(BLOCK, seals=wire._SEALS)
    try:
        with pytest.raises(wire.WireError, match="does not match"):
            wire.decode([_spec(offset=8)], b"", fd)
    finally:
        os.close(fd)


@pytest.fixture
def pipe_fds() -> Iterator[list[int]]:
    fds: list[int] = []
    for _ in range(6):
        fds.extend(os.pipe())
    yield fds
    for fd in fds:
        os.close(fd)


def test_a_reader_refuses_more_descriptors_than_frames_can_carry(pipe_fds: list[int]) -> None:
    reader = wire.Reader(max_payload=1024)
    dups = [os.dup(fd) for fd in pipe_fds[: 2 * wire.MAX_FDS + 1]]
    with pytest.raises(wire.WireError, match="more descriptors"):
        reader.feed(b"", wire._rights(dups))
    reader.close()
    for fd in dups:  # the reader closed every one it took
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)


def test_a_frame_cannot_claim_more_descriptors_than_allowed(pipe_fds: list[int]) -> None:
    reader = wire.Reader(max_payload=1024)
    dups = [os.dup(fd) for fd in pipe_fds[: wire.MAX_FDS + 1]]
    reader.feed(wire.frame_bytes({"fds": wire.MAX_FDS + 1}), wire._rights(dups))
    with pytest.raises(wire.WireError, match="descriptors"):
        reader.frames()
    reader.close()


def test_a_frame_cannot_claim_descriptors_that_did_not_come() -> None:
    reader = wire.Reader(max_payload=1024)
    reader.feed(wire.frame_bytes({"fds": 1}), [])
    with pytest.raises(wire.WireError, match="did not come"):
        reader.frames()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (wire.PREFIX.pack(5, 0) + b"{oops", "not JSON"),
        (wire.PREFIX.pack(4, 0) + b"\xff\xfe\x00\x01", "not JSON"),
        (wire.PREFIX.pack(2, 0) + b"[]", "an object"),
        (wire.PREFIX.pack(wire.MAX_HEADER + 1, 0), "larger than allowed"),
        (wire.PREFIX.pack(2, 1025) + b"{}", "larger than allowed"),
        (wire.frame_bytes({"fds": "1"}), "descriptors"),
    ],
)
def test_a_malformed_frame_is_refused(data: bytes, message: str) -> None:
    reader = wire.Reader(max_payload=1024)
    reader.feed(data, [])
    with pytest.raises(wire.WireError, match=message):
        reader.frames()


def test_frames_arrive_whole_however_the_bytes_are_split() -> None:
    data = wire.frame_bytes({"id": 1}, b"abc") + wire.frame_bytes({"id": 2})
    reader = wire.Reader(max_payload=1024)
    frames = []
    for byte in data:
        reader.feed(bytes([byte]), [])
        frames.extend(reader.frames())
    assert [(f.header, f.payload) for f in frames] == [({"id": 1}, b"abc"), ({"id": 2}, b"")]


def test_frames_and_their_descriptors_cross_a_socket() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    specs, payload, fd = wire.encode({"x": np.ones((100_000,), np.float32)})
    assert fd is not None
    reader = wire.Reader(max_payload=1024)
    frames: list[wire.Frame] = []
    try:
        wire.send(ours, {"id": 1, "tensors": specs}, payload, [fd])
        wire.send(ours, {"id": 2}, b"tail")
        while len(frames) < 2:
            got = wire.recv_frames(theirs, reader)
            assert got is not None
            frames.extend(got)
        first, second = frames
        assert first.header["fds"] == 1
        assert len(first.fds) == 1
        assert first.fds[0] != fd
        shared = wire.decode(first.header["tensors"], first.payload, first.fds[0])
        np.testing.assert_array_equal(shared["x"], np.ones((100_000,), np.float32))
        assert (second.header, second.payload, second.fds) == ({"id": 2, "fds": 0}, b"tail", [])
        ours.close()
        assert wire.recv_frames(theirs, reader) is None
    finally:
        os.close(fd)
        for frame in frames:
            for received in frame.fds:
                os.close(received)
        reader.close()
        ours.close()
        theirs.close()
