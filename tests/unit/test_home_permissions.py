"""ATRIUM_HOME holds keys and (by default) the database: only its owner may read it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from control_plane.cli import app


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _upgrade(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("ATRIUM_HOME", str(home))
    monkeypatch.setenv("ATRIUM_ENVIRONMENT", "test")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output


def test_a_new_home_and_database_are_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "deep" / "home"
    _upgrade(monkeypatch, home)
    assert _mode(home) == 0o700
    assert _mode(home / "atrium.db") == 0o600


def test_an_existing_open_home_and_database_are_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    _upgrade(monkeypatch, home)
    (home / "atrium.db").chmod(0o644)
    _upgrade(monkeypatch, home)
    assert _mode(home) == 0o700
    assert _mode(home / "atrium.db") == 0o600
