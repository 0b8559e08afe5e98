"""Sealed, expiring passes for the Ray dashboard proxy (``job.dashboard``)."""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from control_plane.errors import Unauthorized

PREFIX = "/api/v1/ray/dashboard"
_SIGN_IN = f"ask for a sign-in link: POST {PREFIX}/session (jobs:read), then open its url"


class Passes:
    """Sealed, expiring passes (Fernet, a key derived from ATRIUM_SECRET_KEY): a ticket
    for the sign-in link, then the session cookie. Each names its tenant and kind."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"atrium-ray", info=b"dashboard-passes"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def issue(self, kind: str, tenant_id: str, subject: str) -> str:
        payload = {"kind": kind, "tenant": tenant_id, "sub": subject}
        return self._fernet.encrypt(json.dumps(payload).encode()).decode()

    def check(self, kind: str, sealed: str | None, ttl_s: int) -> str:
        """The tenant a valid, unexpired pass of ``kind`` names; else 401."""
        if not sealed:
            raise Unauthorized(_SIGN_IN)
        try:
            payload = json.loads(self._fernet.decrypt(sealed.encode(), ttl=ttl_s))
        except (InvalidToken, ValueError):
            raise Unauthorized(
                f"the dashboard pass is invalid or has expired; {_SIGN_IN}"
            ) from None
        if payload.get("kind") != kind or not isinstance(payload.get("tenant"), str):
            raise Unauthorized(_SIGN_IN)
        tenant: str = payload["tenant"]
        return tenant
