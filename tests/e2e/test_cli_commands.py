"""The admin commands an operator runs, as real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli_api import ATRIUM, _env

pytestmark = pytest.mark.e2e


def _run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATRIUM, *args],
        env={**_env(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_admin_create_and_key_rotation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "db", "upgrade").returncode == 0
    assert (home / "atrium.db").exists()
    args = ("admin", "create", "--email", "ops@example.com", "--password", "a long enough secret")
    first = _run(home, *args)
    assert first.returncode == 0 and "created" in first.stderr
    again = _run(home, *args)
    assert again.returncode == 0 and "already exists" in again.stderr
    short = _run(home, "admin", "create", "--email", "x@example.com", "--password", "short")
    assert short.returncode == 2 and "12 characters" in short.stderr

    before = json.loads((home / "keys" / "keys.json").read_text())
    assert [e["retired_at"] for e in before] == [None]  # generated on first start
    rotated = _run(home, "keys", "rotate")
    assert rotated.returncode == 0 and "verify for" in rotated.stderr
    manifest = json.loads((home / "keys" / "keys.json").read_text())
    assert manifest[0]["kid"] == before[0]["kid"]
    assert [e["retired_at"] is None for e in manifest] == [False, True]


def test_production_refuses_insecure_settings_by_name(tmp_path: Path) -> None:
    result = _run(tmp_path / "home", "api", ATRIUM_ENVIRONMENT="production")
    assert result.returncode == 2
    assert "ATRIUM_SECRET_KEY" in result.stderr
