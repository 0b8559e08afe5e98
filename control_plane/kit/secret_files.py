"""Secrets kept in files under ATRIUM_HOME: written owner-only and atomically."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr


def write_private(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600 from the first byte, never half-written)."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    temp.replace(path)


def home_secret(configured: SecretStr | None, path: Path, make: Callable[[], str]) -> str:
    """The configured secret, or one generated once and kept at ``path`` (local use only:
    production settings refuse to start without the configured one)."""
    if configured is not None:
        return configured.get_secret_value()
    if not path.exists():
        write_private(path, make())
    return path.read_text().strip()
