"""Ray's auth token for the platform's cluster: the configured one, or (for the local
head) one generated once and kept in ATRIUM_HOME (0600). Never given to a tenant."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from control_plane.kit.secret_files import home_secret


def ray_token(configured: SecretStr | None, home: Path) -> str:
    return home_secret(configured, home / "ray.token", lambda: secrets.token_hex(32))
