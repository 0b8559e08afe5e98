"""The admin commands an operator runs, as real processes."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import _env
from tests.support import ATRIUM

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

    assert _run(home, "keys", "rotate").returncode == 0  # the first key of a new home
    before = json.loads((home / "keys" / "keys.json").read_text())
    assert [e["retired_at"] for e in before] == [None]
    rotated = _run(home, "keys", "rotate")
    assert rotated.returncode == 0 and "verify for" in rotated.stderr
    manifest = json.loads((home / "keys" / "keys.json").read_text())
    assert manifest[0]["kid"] == before[0]["kid"]
    assert [e["retired_at"] is None for e in manifest] == [False, True]


def test_admin_create_builds_no_platform(tmp_path: Path) -> None:
    """A database and a password hasher only: no signing keys, Ray token or other secrets."""
    home = tmp_path / "home"
    args = ("admin", "create", "--email", "ops@example.com", "--password", "a long enough secret")
    created = _run(home, *args)
    assert created.returncode == 0 and "created" in created.stderr
    assert not (home / "keys").exists()
    assert not (home / "ray.token").exists()
    assert sorted(p.name for p in home.iterdir()) == ["atrium.db"]


def test_production_refuses_insecure_settings_by_name(tmp_path: Path) -> None:
    result = _run(tmp_path / "home", "api", ATRIUM_ENVIRONMENT="production")
    assert result.returncode == 2
    assert "ATRIUM_SECRET_KEY" in result.stderr


def test_rotate_master_rewraps_data_keys_and_blobs_still_read(tmp_path: Path) -> None:
    import asyncio

    from control_plane.artifact.keys import DataKeys, master_key_text
    from control_plane.config import Settings
    from control_plane.db import Database
    from control_plane.kit.clock import utcnow
    from control_plane.kit.repository import PLATFORM
    from control_plane.models import Tenant
    from control_plane.tenant.repository import TenantRepository

    home = tmp_path / "home"
    assert _run(home, "db", "upgrade").returncode == 0
    settings = Settings(_env_file=None, home=home)
    url = settings.resolved_database_url

    async def data_key() -> bytes:
        db = Database(url)
        try:
            async with db.sessionmaker() as session, session.begin():
                repo = TenantRepository(session, PLATFORM)
                if await repo.get("ten_x") is None:
                    repo.add(Tenant(id="ten_x", name="X", slug="xxx", created_at=utcnow()))
            return await DataKeys(db, master_key_text(settings)).for_tenant("ten_x")
        finally:
            await db.dispose()

    before = asyncio.run(data_key())
    old_master = (home / "master.key").read_text()
    rotated = _run(home, "keys", "rotate-master")
    assert rotated.returncode == 0 and "re-wrapped 1 data key" in rotated.stderr
    assert (home / "master.key").read_text() != old_master
    assert asyncio.run(data_key()) == before  # same data key, so every blob still reads


def test_rotate_master_with_a_configured_key_needs_the_new_one(tmp_path: Path) -> None:
    configured = "a2V5" * 10 + "a2U="
    refused = _run(tmp_path / "home", "keys", "rotate-master", ATRIUM_MASTER_KEY=configured)
    assert refused.returncode == 2 and "--new-key" in refused.stderr
    bad = _run(
        tmp_path / "home",
        "keys",
        "rotate-master",
        "--new-key",
        "short",
        ATRIUM_MASTER_KEY=configured,
    )
    assert bad.returncode == 2 and "32 bytes" in bad.stderr


def test_up_names_a_port_that_is_already_taken(tmp_path: Path) -> None:
    """A second `atrium up` says which port and setting, in a line, not Ray's traceback."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _run(tmp_path / "home", "up", ATRIUM_API_PORT=str(port))
    assert done.returncode == 1
    assert f"port {port} (ATRIUM_API_PORT) is already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "ray.token").exists()  # nothing was started


def test_samples_writes_a_model_of_every_format_and_a_dataset(tmp_path: Path) -> None:
    done = _run(tmp_path / "home", "samples", str(tmp_path / "s"))
    assert done.returncode == 0, done.stderr
    for fmt in ("sklearn-skops", "xgboost", "torchscript", "torch-export", "onnx", "keras"):
        assert any((tmp_path / "s" / fmt).iterdir()), fmt
    assert (tmp_path / "s" / "tf-savedmodel" / "model.zip").exists()
    assert (tmp_path / "s" / "customers.csv").read_text().count("\n") == 9
    refused = _run(tmp_path / "home", "samples", str(tmp_path / "t"), "--format", "caffe")
    assert refused.returncode == 2 and "unknown format(s): caffe" in refused.stderr
