"""Load an artifact and run one prediction in the sandbox (the tenant zone), with a
memory, CPU and time limit.

A hostile or corrupt file can crash, hang or misbehave only inside the sandbox, which
sees no platform file, secret or network. The registry marks a version ``ready`` only
after a successful probe, and takes the signature from it.

    python -m serve_apps.runtime.probe   (reads the request as JSON on stdin; the
                                          artifact is the descriptor it names)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serve_apps.runtime.scrub import scrub_paths
from serve_apps.runtime.signature import Signature

if TYPE_CHECKING:  # the sandboxed side of this module must not need cluster/
    from cluster.sandbox import Completed, Sandbox


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    signature: Signature | None = None
    error: str | None = None


def probe(
    fmt: str,
    path: Path,
    signature: Signature | None = None,
    *,
    memory_mb: int = 4096,
    timeout_s: float = 120.0,
    allow_pickle: bool = False,
    sandbox: Sandbox | None = None,
) -> ProbeResult:
    """Raises ``SandboxUnavailable`` when no sandbox can be started (never runs unsandboxed)."""
    from cluster.sandbox import Limits, Spec, default_sandbox

    fd = os.open(path, os.O_RDONLY)
    try:
        request = {
            "format": fmt,
            "fd": fd,
            "signature": signature.model_dump() if signature else None,
            "allow_pickle": allow_pickle,
        }
        spec = Spec(
            argv=[sys.executable, "-m", "serve_apps.runtime.probe"],
            limits=Limits(memory_mb=memory_mb, wall_s=timeout_s, tmp_mb=memory_mb),
            packages=("serve_apps",),
            pass_fds=[fd],
            stdin=subprocess.PIPE,
        )
        done = (sandbox or default_sandbox()).run(spec, json.dumps(request).encode())
    finally:
        os.close(fd)
    result = _result(done, memory_mb, timeout_s)
    if result.error:  # the message is for the uploader: no server paths in it
        scrubbed = result.error.replace(str(path), "the artifact")
        scrubbed = scrubbed.replace(f"/proc/self/fd/{fd}", "the artifact").strip()
        return ProbeResult(False, error=scrub_paths(scrubbed))
    return result


def _result(done: Completed, memory_mb: int, timeout_s: float) -> ProbeResult:
    if done.limit == "time":
        return ProbeResult(False, error=f"loading took longer than {timeout_s:g}s")
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    lines = stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            answer = json.loads(lines[-1])
            if answer["ok"]:
                return ProbeResult(True, signature=Signature.model_validate(answer["signature"]))
            return ProbeResult(False, error=str(answer["error"])[:2000])
        except (ValueError, KeyError, TypeError):
            return ProbeResult(False, error="the loader answered something unreadable")
    out_of_memory = ("MemoryError", "bad_alloc", "Memory allocation")
    if done.limit == "memory" or any(sign in stderr for sign in out_of_memory):
        return ProbeResult(False, error=f"loading needed more than {memory_mb} MB")
    tail = stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return ProbeResult(False, error=f"the loader crashed: {tail[0][:300]}")


def _main() -> None:
    from serve_apps.runtime import LoaderError, load_model, sample_inputs

    request = json.loads(sys.stdin.read())
    given = request["signature"]
    try:
        model = load_model(
            request["format"],
            Path(f"/proc/self/fd/{int(request['fd'])}"),
            Signature.model_validate(given) if given else None,
            device="cpu",
            allow_pickle=request["allow_pickle"],
        )
        model.predict(sample_inputs(model.signature))
    except (LoaderError, ValueError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return
    except ImportError as exc:
        missing = f"this server cannot load {request['format']} models: {exc} (install atrium[ml])"
        print(json.dumps({"ok": False, "error": missing}))
        return
    print(json.dumps({"ok": True, "signature": model.signature.model_dump()}))


if __name__ == "__main__":
    _main()
