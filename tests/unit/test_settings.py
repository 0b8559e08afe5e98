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


PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "secret_key": "s" * 40,
    "master_key": "a2V5" * 10 + "a2U=",
    "database_url": "postgresql://atrium@db:5432/atrium",
}


def test_production_with_real_secrets_starts() -> None:
    settings = _settings(**PRODUCTION)
    assert settings.environment == "production"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        # quotas, throttles and revocation would be counted per process
        ({"gateway_replicas": 2}, "ATRIUM_REDIS_URL"),
        ({"api_replicas": 3}, "ATRIUM_REDIS_URL"),
        # anyone reaching the cluster's dashboard could deploy code
        ({"ray_address": "http://ray-head.cluster.local:8265"}, "ATRIUM_RAY_AUTH_TOKEN"),
        ({"allow_pickle": True}, "ATRIUM_ALLOW_PICKLE"),
        ({"internal_token": ""}, "ATRIUM_INTERNAL_TOKEN"),
        ({"internal_token": "short-token"}, "ATRIUM_INTERNAL_TOKEN"),
        ({"database_url": None}, "ATRIUM_DATABASE_URL"),
        ({"database_url": "sqlite:////var/lib/atrium/atrium.db"}, "ATRIUM_DATABASE_URL"),
        ({"metrics_token": "short"}, "ATRIUM_METRICS_TOKEN"),
        ({"internal_networks": ["0.0.0.0/0"]}, "ATRIUM_INTERNAL_NETWORKS"),
    ],
)
def test_production_refuses_unsafe_settings(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        _settings(**{**PRODUCTION, **values})


@pytest.mark.parametrize(
    "values",
    [
        {"gateway_replicas": 2, "api_replicas": 2, "redis_url": "redis://redis:6379/0"},
        {"ray_address": "http://127.0.0.1:8265"},
        {"ray_address": "http://ray-head:8265", "ray_auth_token": "r" * 40},
        {"internal_token": "i" * 32, "metrics_token": "m" * 32},
        {"internal_networks": ["10.0.0.0/8", "::1/128"]},
    ],
)
def test_production_accepts_the_safe_forms(values: dict[str, Any]) -> None:
    assert _settings(**{**PRODUCTION, **values}).environment == "production"


def test_an_empty_internal_token_is_never_a_token_outside_production() -> None:
    """Unset instead: a generated one is used, never the empty string."""
    assert _settings(internal_token="").internal_token is None
    assert _settings(internal_token="  ").internal_token is None


def test_internal_networks_must_be_networks() -> None:
    with pytest.raises(ValidationError, match="internal_networks"):
        _settings(internal_networks=["not-a-network"])


def test_access_tokens_live_at_most_fifteen_minutes() -> None:
    with pytest.raises(ValidationError, match="access_token_ttl_seconds"):
        _settings(access_token_ttl_seconds=3600)
