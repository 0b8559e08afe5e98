"""A runtime worker: loads and predicts one tenant's models, inside the sandbox.

    python -m serve_apps.runtime.worker FD TENANT   (FD: its socket to the platform;
                                                    TENANT: whose it is, for ps)

It holds no credential and sees no platform file: artifacts come in as read-only
descriptors, tensors as raw bytes or sealed shared memory, and its answers are data
(see ``wire``). It serves one request at a time; the platform enforces deadlines by
killing it.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from serve_apps.runtime import wire
from serve_apps.runtime.loaders.base import LoadedModel, LoaderError
from serve_apps.runtime.signature import InputError, Signature

Reply = tuple[dict[str, Any], bytes, list[int]]


class Worker:
    def __init__(self) -> None:
        self.models: dict[str, LoadedModel] = {}

    def handle(self, frame: wire.Frame) -> Reply:
        op = frame.header.get("op")
        try:
            if op == "load":
                return self._load(frame, probe=False)
            if op == "probe":
                return self._load(frame, probe=True)
            if op == "unload":
                self.models.pop(str(frame.header.get("key")), None)
                return {"ok": True}, b"", []
            if op == "predict":
                return self._predict(frame)
            return _failed("protocol", f"unknown operation {op!r}")
        except InputError as exc:
            return _failed("input", str(exc))
        except LoaderError as exc:
            return _failed("loader", str(exc))
        except ImportError as exc:
            return _failed("loader", f"this server cannot load the format: {exc}")
        except MemoryError:
            return _failed("memory", "the model ran out of memory")
        except Exception as exc:  # the model's own failure: reported, the worker lives on
            return _failed("model", f"{type(exc).__name__}: {exc}"[:1000])
        finally:
            for fd in frame.fds:
                os.close(fd)

    def _load(self, frame: wire.Frame, *, probe: bool) -> Reply:
        from serve_apps.runtime import load_model, sample_inputs

        header = frame.header
        if len(frame.fds) != 1:
            return _failed("protocol", "load takes exactly one artifact descriptor")
        given = header.get("signature")
        model = load_model(
            str(header["format"]),
            Path(f"/proc/self/fd/{frame.fds[0]}"),
            Signature.model_validate(given) if given else None,
            device="cpu" if probe else None,
            allow_pickle=bool(header.get("allow_pickle")),
        )
        if probe:
            model.predict(sample_inputs(model.signature))
        else:
            self.models[str(header["key"])] = model
        return {"ok": True, "signature": model.signature.model_dump()}, b"", []

    def _predict(self, frame: wire.Frame) -> Reply:
        model = self.models.get(str(frame.header.get("key")))
        if model is None:
            return _failed("unloaded", "the model is not loaded in this worker")
        shared = frame.fds[0] if frame.fds else None
        inputs = wire.decode(frame.header.get("tensors"), frame.payload, shared)
        specs, payload, fd = wire.encode(model.predict(inputs))
        return {"ok": True, "tensors": specs}, payload, [fd] if fd is not None else []


def _failed(kind: str, error: str) -> Reply:
    return {"ok": False, "kind": kind, "error": error}, b"", []


def main(fd: int) -> None:
    import numpy  # noqa: F401 - paid once, before the platform's first request

    sock = socket.socket(fileno=fd)
    reader = wire.Reader(max_payload=wire.MAX_INLINE)
    worker = Worker()
    wire.send(sock, {"id": 0, "ok": True, "pid": os.getpid()})
    while (frames := wire.recv_frames(sock, reader)) is not None:
        for frame in frames:
            header, payload, fds = worker.handle(frame)
            wire.send(sock, {**header, "id": frame.header.get("id")}, payload, fds)
            for sent in fds:
                os.close(sent)


if __name__ == "__main__":
    main(int(sys.argv[1]))
