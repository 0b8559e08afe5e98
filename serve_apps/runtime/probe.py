"""Load an artifact and run one prediction in a child process with a memory and time limit.

A hostile or corrupt file can crash or hang only the child. The registry marks a
version ``ready`` only after a successful probe, and takes the signature from it.

    python -m serve_apps.runtime.probe   (reads the request as JSON on stdin)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from serve_apps.runtime.signature import Signature


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
) -> ProbeResult:
    request = {
        "format": fmt,
        "path": str(path),
        "signature": signature.model_dump() if signature else None,
        "allow_pickle": allow_pickle,
    }

    def limit() -> None:  # runs in the child, before Python starts
        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    try:
        done = subprocess.run(
            [sys.executable, "-m", "serve_apps.runtime.probe"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            preexec_fn=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(False, error=f"loading took longer than {timeout_s:g}s")
    result = _result(done, memory_mb)
    if result.error:  # the message is for the uploader: no server paths in it
        scrubbed = result.error.replace(str(path), "the artifact").strip()
        return ProbeResult(False, error=scrubbed)
    return result


def _result(done: subprocess.CompletedProcess[str], memory_mb: int) -> ProbeResult:
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        answer = json.loads(lines[-1])
        if answer["ok"]:
            return ProbeResult(True, signature=Signature.model_validate(answer["signature"]))
        return ProbeResult(False, error=answer["error"])
    if any(sign in done.stderr for sign in ("MemoryError", "bad_alloc", "Memory allocation")):
        return ProbeResult(False, error=f"loading needed more than {memory_mb} MB")
    tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return ProbeResult(False, error=f"the loader crashed: {tail[0][:300]}")


def _main() -> None:
    from serve_apps.runtime import LoaderError, load_model, sample_inputs

    request = json.loads(sys.stdin.read())
    given = request["signature"]
    try:
        model = load_model(
            request["format"],
            Path(request["path"]),
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
