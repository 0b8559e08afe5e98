"""The platform secrets Serve replicas need, read from a file rather than taken from the
Serve config: an application's ``args`` are readable by anyone who can read Ray's
dashboard (``GET /api/serve/applications/``), so they carry only this file's path.

The control plane writes the file (mode 0600, in ATRIUM_HOME), or an operator mounts
it on every Ray node (Kubernetes: a Secret) and names it in ATRIUM_SERVE_SECRETS_FILE.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SecretsFileError(RuntimeError):
    """The secrets file is missing, unreadable or malformed; the message names it."""


class ServeSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(description="API keys, users, tenants and the usage ledger.")
    redis_url: str | None = Field(None, description="Shared rate limits, quotas, invalidation.")
    internal_token: str = Field(description="Presented to the control plane's internal routes.")

    @classmethod
    def load(cls, path: str | Path) -> ServeSecrets:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SecretsFileError(
                f"cannot read the serve secrets file {path}: {exc.strerror or exc}"
            ) from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
            )
            raise SecretsFileError(f"invalid serve secrets file {path}: {problems}") from None
