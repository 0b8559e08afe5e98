"""Messages a tenant reads (a failed probe, a failed deployment) name no host path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from cluster.sandbox import Completed, Spec
from serve_apps.runtime.probe import probe
from serve_apps.runtime.scrub import scrub_paths

VENV = f"{sys.prefix}/lib/python3.11/site-packages/torch/serialization.py"


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (f'File "{VENV}", line 5, in load', 'File "<path>", line 5, in load'),
        ("cannot open /srv/atrium/home/tmp/dec-1234: gone", "cannot open <path>: gone"),
        ("see ~/.atrium/keys/signing.pem", "see <path>"),
        ("Errno 2: '/var/lib/ray/session_1/logs/x.log'", "Errno 2: '<path>'"),
    ],
)
def test_host_paths_are_removed(message: str, kept: str) -> None:
    assert scrub_paths(message) == kept


@pytest.mark.parametrize(
    "message",
    [
        "expected shape [-1, 4], got 3/4 of the columns",
        "fetch http://127.0.0.1:8265/api/serve/applications/ failed",
        "dtype float32/float64 mismatch in input x",
        "variables/variables.index is missing from the SavedModel",
    ],
)
def test_other_text_is_left_alone(message: str) -> None:
    assert scrub_paths(message) == message


class _Crashing:
    """A sandbox whose loader dies printing a traceback full of host paths."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr

    def run(self, spec: Spec, data: bytes | None = None) -> Completed:
        return Completed(returncode=1, stdout=b"", stderr=self.stderr.encode(), limit=None)


def test_a_crashed_probe_names_no_host_path(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    crash = f"RuntimeError: cannot mmap {tmp_path}/scratch/123 via {VENV}"
    sandbox: Any = _Crashing(crash)
    result = probe("onnx", blob, sandbox=sandbox)
    assert result.error is not None and result.error.startswith("the loader crashed")
    assert str(tmp_path) not in result.error
    assert sys.prefix not in result.error
