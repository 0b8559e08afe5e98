"""The secrets file Serve replicas read (database and Redis URLs, the internal token).

Serve application ``args`` are readable through Ray's dashboard, so the rendered config
carries only this file's path, and a revision that changes when the file does (Serve
then restarts the replicas, which read it again).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from control_plane.config import Settings
from control_plane.kit.secret_files import write_private
from serve_apps.runtime.secrets import SecretsFileError, ServeSecrets

SECRETS_FILE = "serve-secrets.json"


def serve_secrets_file(settings: Settings, *, internal_token: str) -> Path:
    """ATRIUM_SERVE_SECRETS_FILE (mounted on the Ray nodes: not written here), or
    ATRIUM_HOME/serve-secrets.json, (re)written owner-only when it is not current."""
    if settings.serve_secrets_file is not None:
        return settings.serve_secrets_file
    path = (settings.home_dir / SECRETS_FILE).absolute()
    wanted = ServeSecrets(
        database_url=settings.resolved_database_url,
        redis_url=settings.redis_url,
        internal_token=internal_token,
    )
    if not _holds(path, wanted):
        write_private(path, wanted.model_dump_json(indent=2))
    return path


def revision(path: Path) -> str:
    """Changes whenever the file is rewritten ('' where this process cannot see it)."""
    try:
        return str(path.stat().st_mtime_ns)
    except OSError:
        return ""


def _holds(path: Path, wanted: ServeSecrets) -> bool:
    """Whether ``path`` already says exactly this, readable by its owner only."""
    with contextlib.suppress(OSError, SecretsFileError):
        return path.stat().st_mode & 0o077 == 0 and ServeSecrets.load(path) == wanted
    return False
