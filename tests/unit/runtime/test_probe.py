"""The probe loads in a child process that cannot take the caller down with it."""

from __future__ import annotations

from pathlib import Path

from serve_apps.runtime.probe import probe
from tests.models import MATRIX, onnx, sklearn


def test_a_good_model_is_ready_with_its_signature(tmp_path: Path) -> None:
    path, _, _ = onnx(tmp_path)
    result = probe("onnx", path)
    assert result.ok, result.error
    assert result.signature is not None
    assert [(s.name, s.dtype, s.shape) for s in result.signature.inputs] == [
        ("x", "float32", [-1, 4])
    ]


def test_a_bad_model_fails_with_the_loader_message(tmp_path: Path) -> None:
    path, _, _ = sklearn(tmp_path)
    result = probe("xgboost", path, MATRIX)
    assert not result.ok
    assert result.error is not None and "XGBoost" in result.error


def test_time_and_memory_limits_hold(tmp_path: Path) -> None:
    path, _, _ = onnx(tmp_path)
    slow = probe("onnx", path, timeout_s=0.05)
    assert not slow.ok and slow.error == "loading took longer than 0.05s"
    starved = probe("onnx", path, memory_mb=16)
    assert not starved.ok
    assert starved.error is not None
    assert "16 MB" in starved.error or "crashed" in starved.error


def test_the_message_names_no_server_path(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\x08\x07 not protobuf at all")
    result = probe("onnx", path)
    assert result.error is not None and "the artifact" in result.error
    assert str(tmp_path) not in result.error
