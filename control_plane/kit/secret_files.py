"""Secrets kept in files under ATRIUM_HOME: written owner-only and atomically."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.engine import make_url


def ensure_private_dir(path: Path) -> None:
    """``path`` exists and only its owner may enter it (0700; an existing directory of
    ours that is open to others is closed)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    restrict(path, 0o700)


def ensure_private_file(path: Path) -> None:
    """``path`` exists (empty if new) and only its owner may read it (0600)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        restrict(path, 0o600)


def ensure_private_database(url: str) -> None:
    """A SQLite database file is made owner-only (0600) before SQLite first opens it; its
    journal files take the same mode from it. Other databases: nothing to do."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name.startswith((":", "file:")):
        return
    path = Path(name).expanduser()
    if not path.parent.is_dir():
        return  # SQLite will say so
    ensure_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            restrict(sidecar, 0o600)


def restrict(path: Path, mode: int) -> None:
    """Tighten ``path`` to ``mode`` when it is ours and more open than that."""
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o777 & ~mode:
        path.chmod(mode)


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
