"""From a terminal, as the README shows: upload models and a dataset with the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.platform import tenant_with_key
from tests.models import MATRIX, broken_onnx, onnx, xgboost
from tests.support import ATRIUM

pytestmark = pytest.mark.e2e


def test_upload_alias_and_a_rejected_file_from_the_cli(
    server: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    base, _ = server
    _, _, key = tenant_with_key(base, "acme", ["models:write"])
    env = {**os.environ, "ATRIUM_URL": base, "ATRIUM_API_KEY": key}

    def atrium(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ATRIUM, *args], env=env, capture_output=True, text=True, timeout=180, check=False
        )

    assert atrium("models", "create", "churn", "--framework", "onnx").returncode == 0
    done = atrium("models", "upload", "churn", str(onnx(tmp_path)[0]), "--format", "onnx")
    assert done.returncode == 0, done.stderr
    assert "churn version 1: ready" in done.stdout
    signature = tmp_path / "signature.json"
    signature.write_text(MATRIX.model_dump_json())
    booster = xgboost(tmp_path)[0]
    done = atrium(
        "models", "upload", "churn", str(booster), "--format", "xgboost", "--signature",
        f"@{signature}", "--tag", "team=risk",
    )  # fmt: skip
    assert "churn version 2: ready" in done.stdout, done.stderr
    assert atrium("models", "alias", "churn", "champion", "2").returncode == 0
    listing = atrium("models", "list").stdout
    assert "champion→2" in listing
    bad = atrium("models", "upload", "churn", str(broken_onnx(tmp_path)), "--format", "onnx")
    assert bad.returncode == 1
    assert "422 Model rejected: version 3 was not accepted" in " ".join(bad.stderr.split())
    versions = atrium("models", "versions", "churn").stdout
    assert "ready" in versions and "champion" in versions

    table = tmp_path / "customers.csv"
    table.write_text("age,churned\n34,0\n51,1\n")
    uploaded = atrium("datasets", "upload", str(table), "--name", "customers")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "2 rows  [age:int64, churned:int64]" in uploaded.stdout
    assert json.dumps("customers")[1:-1] in atrium("datasets", "list").stdout
