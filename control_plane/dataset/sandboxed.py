"""Dataset files are read in the tenant zone: a parser fed a tenant's file is a target,
so pyarrow reads it in the sandbox (no platform file, secret or network; memory, CPU
and time capped) and only its description comes back, as JSON checked here.

    python -m control_plane.dataset.sandboxed FORMAT FD   (FD: the file, read-only)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control_plane.dataset.inspect import TableShape, UnreadableDataset, inspect

if TYPE_CHECKING:  # the sandboxed side of this module sees only control_plane/
    from cluster.sandbox import Sandbox

log = logging.getLogger(__name__)


def inspect_sandboxed(
    sandbox: Sandbox, path: Path, fmt: str, *, memory_mb: int, timeout_s: float
) -> TableShape:
    """Rows and typed columns of the file, read in the sandbox; UnreadableDataset when
    it is not a readable table (or the reader broke a limit)."""
    from cluster.sandbox import Limits, Spec

    fd = os.open(path, os.O_RDONLY)
    try:
        spec = Spec(
            argv=[sys.executable, "-m", "control_plane.dataset.sandboxed", fmt, str(fd)],
            limits=Limits(memory_mb=memory_mb, wall_s=timeout_s),
            packages=("control_plane",),
            pass_fds=[fd],
            stdin=subprocess.DEVNULL,
        )
        done = sandbox.run(spec)
    finally:
        os.close(fd)
    if done.limit is not None:
        raise UnreadableDataset(f"reading the file broke the {done.limit} limit")
    try:
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
        error = answer.get("error")
        shape = None if error is not None else _shape(answer)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        log.warning("the sandboxed dataset reader failed: %s", done)
        raise UnreadableDataset("the file could not be read") from None
    if shape is None:
        raise UnreadableDataset(str(error)[:2000])
    return shape


def _shape(answer: dict[str, Any]) -> TableShape:
    columns = [{"name": str(c["name"]), "type": str(c["type"])} for c in answer["columns"]]
    return TableShape(int(answer["rows"]), columns)


def _main(fd: int, fmt: str) -> None:
    try:
        shape = inspect(Path(f"/proc/self/fd/{fd}"), fmt)
    except UnreadableDataset as exc:
        message = str(exc).replace(f"/proc/self/fd/{fd}", "the file")
        print(json.dumps({"error": message}))
        return
    print(json.dumps({"rows": shape.rows, "columns": shape.columns}))


if __name__ == "__main__":
    _main(int(sys.argv[2]), sys.argv[1])
