"""What Atrium's local Ray head may inherit from the control plane's environment
(the real head is started in tests/integration/test_ray_environment.py)."""

from __future__ import annotations

import os

import pytest

from cluster.local import allowed, allowed_environment


def test_only_allow_listed_variables_cross() -> None:
    environ = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "RAY_AUTH_TOKEN": "t",
        "CUDA_VISIBLE_DEVICES": "0",
        "ATRIUM_SECRET_KEY": "s",
        "ATRIUM_DATABASE_URL": "postgresql://u:pw@h/db",
        "AWS_SECRET_ACCESS_KEY": "a",
        "PATHOLOGICAL": "x",
    }
    assert allowed(environ) == {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "RAY_AUTH_TOKEN": "t",
        "CUDA_VISIBLE_DEVICES": "0",
    }


def test_the_environment_is_restored_with_what_ray_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATRIUM_SECRET_KEY", "kept")
    monkeypatch.delenv("RAY_SET_DURING_INIT", raising=False)
    with allowed_environment():
        assert "ATRIUM_SECRET_KEY" not in os.environ
        assert "PATH" in os.environ
        os.environ["RAY_SET_DURING_INIT"] = "1"
    assert os.environ["ATRIUM_SECRET_KEY"] == "kept"
    assert os.environ.pop("RAY_SET_DURING_INIT") == "1"
