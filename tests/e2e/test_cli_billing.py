"""Operators close billing periods and get told about bad plan files, by name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from control_plane.config import Settings
from tests.e2e.test_cli_commands import _run

pytestmark = pytest.mark.e2e


def test_close_period_refuses_an_open_month_and_closes_a_past_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    this_month = datetime.now(UTC).strftime("%Y-%m")
    refused = _run(home, "billing", "close-period", "--period", this_month)
    assert refused.returncode == 2 and "has not ended" in refused.stderr
    bad = _run(home, "billing", "close-period", "--period", "March")
    assert bad.returncode == 2 and "2026-03" in bad.stderr
    first = _run(home, "billing", "close-period", "--period", "2026-01")
    assert first.returncode == 0 and "issued 0 invoice(s)" in first.stderr


def test_a_bad_plans_file_stops_start_up_naming_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load(Settings(_env_file=None).plans_file.read_text())
    raw["plans"]["free"]["limits"]["api_rps"] = "fast"
    plans = tmp_path / "plans.yaml"
    plans.write_text(yaml.safe_dump(raw))
    result = _run(tmp_path / "home", "api", ATRIUM_PLANS_FILE=str(plans))
    assert result.returncode == 2
    assert "plans.free.limits.api_rps" in result.stderr
