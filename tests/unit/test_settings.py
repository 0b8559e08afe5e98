from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from control_plane.config import Settings


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults_use_sqlite_in_home(tmp_path: Path) -> None:
    settings = _settings(home=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/atrium.db"
    assert (settings.api_host, settings.api_port, settings.serve_port) == ("127.0.0.1", 8080, 8000)


def test_plain_postgres_urls_get_the_psycopg_driver() -> None:
    settings = _settings(database_url="postgresql://u@db:5432/atrium")
    assert settings.resolved_database_url == "postgresql+psycopg://u@db:5432/atrium"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATRIUM_API_PORT", "9999")
    monkeypatch.setenv("ATRIUM_REDIS_URL", "redis://r:6379/1")
    settings = _settings()
    assert settings.api_port == 9999
    assert settings.redis_url == "redis://r:6379/1"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "ATRIUM_SECRET_KEY"),
        ({"secret_key": "changeme"}, "ATRIUM_SECRET_KEY"),
        (
            {"secret_key": "s" * 40, "bootstrap_admin_password": "change-me"},
            "BOOTSTRAP_ADMIN_PASSWORD",
        ),
        ({"secret_key": "s" * 40, "argon2_memory_kib": 1024}, "ARGON2"),
        ({"secret_key": "s" * 40}, "ATRIUM_MASTER_KEY"),
    ],
)
def test_production_refuses_insecure_defaults(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        _settings(environment="production", **values)


def test_production_with_real_secrets_starts() -> None:
    settings = _settings(
        environment="production", secret_key="s" * 40, master_key="a2V5" * 10 + "a2U="
    )
    assert settings.environment == "production"


def test_access_tokens_live_at_most_fifteen_minutes() -> None:
    with pytest.raises(ValidationError, match="access_token_ttl_seconds"):
        _settings(access_token_ttl_seconds=3600)
