"""Helpers shared by every kind of test."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from control_plane.config import Settings

ATRIUM = str(Path(sys.executable).parent / "atrium")  # the CLI of this environment
ADMIN_EMAIL = "root@platform.example.com"
PASSWORD = "correct horse battery staple"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_missing(what: str) -> None:
    """Locally, a missing Postgres/Redis skips its tests; in CI it fails them."""
    message = f"{what} is not configured or not reachable"
    if in_ci():
        pytest.fail(f"{message} (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(message)


def make_settings(home: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: cheap argon2 (tests hash many passwords), a bootstrap admin."""
    values: dict[str, Any] = {
        "environment": "test",
        "home": home,
        "database_url": database_url,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "bootstrap_admin_email": ADMIN_EMAIL,
        "bootstrap_admin_password": PASSWORD,
        "key_usage_flush_seconds": 0.2,
        "usage_flush_seconds": 0.2,
        "dispatcher_poll_seconds": 0.05,
        "webhook_retry_base_seconds": 0.1,
        "webhook_allowed_hosts": ["127.0.0.1", "hooks.example.com"],
        "log_level": "WARNING",
        "probe_poll_seconds": 0.2,
        # a cluster address where nothing listens: deployments are accepted and stay
        # pending (the reconciler retries); tests with a real cluster are in integration/
        "ray_dashboard_url": "http://127.0.0.1:9",
        "probe_timeout_seconds": 120,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
