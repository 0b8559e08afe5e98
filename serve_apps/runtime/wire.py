"""What crosses between the platform and a sandboxed runtime worker: data only.

A frame on a Unix stream socket is ``[u32 header length][u32 payload length]``, a JSON
header, then the payload; file descriptors (an artifact, a shared-memory tensor block)
ride along as SCM_RIGHTS with the frame's first bytes and the header counts them.
Tensors are raw bytes described by dtype, shape, offset and length: small ones inline
in the payload, large ones in a sealed ``memfd`` that the other side maps. Whatever the
worker sends is parsed as data and checked (dtype allow-list, sizes within the
buffer); nothing is ever unpickled.
"""

from __future__ import annotations

import array
import fcntl
import json
import mmap
import os
import re
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PREFIX = struct.Struct("<II")
MAX_HEADER = 1 << 20
MAX_INLINE = 256 * 1024  # larger tensor blocks go through shared memory
MAX_FDS = 4
_DTYPE = re.compile(r"^[<>|=]?[biufcUS]\d{1,5}$")
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL

Arrays = dict[str, np.ndarray]


class WireError(Exception):
    """The other side sent something that is not a valid frame or tensor block."""


@dataclass
class Frame:
    header: dict[str, Any]
    payload: bytes | memoryview = b""
    fds: list[int] = field(default_factory=list)


# --- tensors ---------------------------------------------------------------------------


def pack(arrays: Arrays) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Descriptions and contiguous arrays (strings as fixed-width numpy text)."""
    specs, parts, offset = [], [], 0
    for name, value in arrays.items():
        value = np.asarray(_plain(np.asarray(value)), order="C")  # a 0-d array stays 0-d
        specs.append(
            {
                "name": name,
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "offset": offset,
                "nbytes": value.nbytes,
            }
        )
        parts.append(value)
        offset += value.nbytes
    return specs, parts


def encode(arrays: Arrays) -> tuple[list[dict[str, Any]], bytes, int | None]:
    """(descriptions, inline payload, memfd) for ``arrays``: the block goes inline when
    small, else into a sealed memfd (the receiver maps it; the caller closes the fd)."""
    specs, parts = pack(arrays)
    total = sum(p.nbytes for p in parts)
    if total <= MAX_INLINE:
        return specs, b"".join(p.tobytes() for p in parts), None
    fd = os.memfd_create("atrium-tensors", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, total)
        with mmap.mmap(fd, total) as block:
            for spec, part in zip(specs, parts, strict=True):
                block[spec["offset"] : spec["offset"] + spec["nbytes"]] = part.data.cast("B")
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return specs, b"", fd


def decode(specs: Any, payload: bytes | memoryview, fd: int | None) -> Arrays:
    """Arrays from descriptions and their block (inline, or a sealed memfd), checked."""
    block: bytes | memoryview | mmap.mmap = payload
    if fd is not None:
        block = _map_sealed(fd)
    if not isinstance(specs, list) or len(specs) > 4096:
        raise WireError("tensor descriptions must be a list")
    return {_text(spec, "name"): _array(spec, block) for spec in specs}


def _array(spec: Any, block: bytes | memoryview | mmap.mmap) -> np.ndarray:
    dtype_text, shape = _text(spec, "dtype"), spec.get("shape")
    if not _DTYPE.match(dtype_text):
        raise WireError(f"dtype {dtype_text!r} is not allowed")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise WireError("a shape is a list of non-negative integers")
    dtype = np.dtype(dtype_text)
    offset, nbytes = spec.get("offset"), spec.get("nbytes")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not isinstance(offset, int) or not isinstance(nbytes, int) or offset < 0:
        raise WireError("offset and nbytes must be integers")
    if count * dtype.itemsize != nbytes or offset + nbytes > len(block):
        raise WireError("a tensor's size does not match its block")
    value = np.frombuffer(block, dtype=dtype, count=count, offset=offset).reshape(shape)
    return value.astype(object) if dtype.kind in "US" else value


def _plain(value: np.ndarray) -> np.ndarray:
    if value.dtype.kind != "O":
        return value
    flat = value.ravel()
    if all(isinstance(v, bytes) for v in flat):
        return value.astype(np.bytes_)
    return value.astype(np.str_)


def _map_sealed(fd: int) -> mmap.mmap:
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    if seals & _SEALS != _SEALS:  # else the sender could shrink it under us (SIGBUS)
        raise WireError("a shared-memory block must be sealed")
    size = os.fstat(fd).st_size
    if size == 0:
        raise WireError("an empty shared-memory block")
    return mmap.mmap(fd, size, prot=mmap.PROT_READ)


def _text(spec: Any, key: str) -> str:
    value = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(value, str) or len(value) > 1024:
        raise WireError(f"'{key}' must be a short string")
    return value


# --- frames ----------------------------------------------------------------------------


def frame_bytes(header: dict[str, Any], payload: bytes = b"") -> bytes:
    body = json.dumps(header, separators=(",", ":")).encode()
    return PREFIX.pack(len(body), len(payload)) + body + payload


def send(
    sock: socket.socket, header: dict[str, Any], payload: bytes = b"", fds: Sequence[int] = ()
) -> None:
    """Blocking send of one frame (the worker's side)."""
    data = frame_bytes({**header, "fds": len(fds)}, payload)
    sent = sock.sendmsg([data], _rights(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def _rights(fds: Sequence[int]) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]


class Reader:
    """Frames out of a byte stream and the descriptors that came with it."""

    def __init__(self, max_payload: int) -> None:
        self._buffer = bytearray()
        self._fds: list[int] = []
        self._max_payload = max_payload

    def feed(self, data: bytes, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
                self._fds.extend(fds)
        if len(self._fds) > 2 * MAX_FDS:
            raise WireError("more descriptors than frames to carry them")
        self._buffer += data

    def frames(self) -> list[Frame]:
        done = []
        while len(self._buffer) >= PREFIX.size:
            head, size = PREFIX.unpack_from(self._buffer)
            if head > MAX_HEADER or size > self._max_payload:
                raise WireError("a frame larger than allowed")
            end = PREFIX.size + head + size
            if len(self._buffer) < end:
                break
            try:
                header = json.loads(self._buffer[PREFIX.size : PREFIX.size + head])
            except ValueError as exc:
                raise WireError(f"a frame header is not JSON: {exc}") from None
            if not isinstance(header, dict):
                raise WireError("a frame header must be an object")
            wanted = header.get("fds", 0)
            if not isinstance(wanted, int) or not 0 <= wanted <= min(MAX_FDS, len(self._fds)):
                raise WireError("a frame names descriptors that did not come")
            fds, self._fds = self._fds[:wanted], self._fds[wanted:]
            payload = bytes(self._buffer[PREFIX.size + head : end])
            del self._buffer[:end]
            done.append(Frame(header, payload, fds))
        return done

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


def recv_frames(sock: socket.socket, reader: Reader) -> list[Frame] | None:
    """Blocking: at least one frame, or None at end of stream."""
    while True:
        data, ancillary, _, _ = sock.recvmsg(
            1 << 20, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
        )
        if not data:
            return None
        reader.feed(data, ancillary)
        frames = reader.frames()
        if frames:
            return frames
