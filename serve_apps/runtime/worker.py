"""A runtime worker: loads and predicts one tenant's models, inside the sandbox.

    python -m serve_apps.runtime.worker FD LABEL [FORMAT,...]
        FD: its socket to the platform; LABEL: whose it is, for ps ("spare" until the
        platform hands it to a tenant); FORMAT: frameworks imported before it says hello,
        so a spare's first load does not pay for them

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

import setproctitle

from serve_apps.runtime import wire
from serve_apps.runtime.loaders.base import LoadedModel, LoaderError
from serve_apps.runtime.signature import InputError, Signature

Reply = tuple[dict[str, Any], bytes, list[int]]


class Worker:
    def __init__(self, tenant: str | None = None) -> None:
        self.models: dict[str, LoadedModel] = {}
        self.tenant = tenant  # None: a spare, not yet anyone's

    def handle(self, frame: wire.Frame) -> Reply:
        op = frame.header.get("op")
        try:
            if op == "bind":
                return self._bind(str(frame.header.get("tenant")))
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

    def _bind(self, tenant: str) -> Reply:
        """A spare becomes a tenant's, once: for ps, ``python -m ... FD TENANT``."""
        if self.tenant is not None:
            return _failed("protocol", "this worker already belongs to a tenant")
        self.tenant = tenant
        argv = [sys.executable, "-m", "serve_apps.runtime.worker", sys.argv[1], tenant]
        setproctitle.setproctitle(" ".join(argv))
        return {"ok": True}, b"", []

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


# what each format imports; a spare imports these before it is handed to a tenant
WARM_MODULES = {
    "onnx": ("onnxruntime",),
    "sklearn": ("sklearn", "skops.io"),
    "xgboost": ("xgboost",),
    "torch": ("torch",),
    "tensorflow": ("tensorflow",),
}


def warm(formats: list[str]) -> None:
    """Import the runtime and the frameworks of ``formats`` (paid before the first
    request; missing frameworks are left for the load to report)."""
    import importlib

    import serve_apps.runtime  # noqa: F401 - the loaders, pydantic and numpy

    for fmt in formats:
        for module in WARM_MODULES.get(fmt, ()):
            try:
                importlib.import_module(module)
            except ImportError:
                continue


def main(fd: int, formats: list[str]) -> None:
    setproctitle.getproctitle()  # finds argv before imports move the environment
    warm(formats)
    sock = socket.socket(fileno=fd)
    reader = wire.Reader(max_payload=wire.MAX_INLINE)
    worker = Worker(None if sys.argv[2] == "spare" else sys.argv[2])
    wire.send(sock, {"id": 0, "ok": True, "pid": os.getpid()})
    while (frames := wire.recv_frames(sock, reader)) is not None:
        for frame in frames:
            header, payload, fds = worker.handle(frame)
            wire.send(sock, {**header, "id": frame.header.get("id")}, payload, fds)
            for sent in fds:
                os.close(sent)


if __name__ == "__main__":
    main(int(sys.argv[1]), [f for f in (sys.argv[3] if len(sys.argv) > 3 else "").split(",") if f])
