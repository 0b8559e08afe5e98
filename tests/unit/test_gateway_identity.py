"""The gateway's identity below a live cluster (a SQLite database, the JWKS served by a
mock transport): an access token is refused once its sign-in session has ended
(logout, reuse of a spent refresh token), as in the control plane."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import update

from control_plane.config import Settings
from control_plane.errors import Unauthorized
from control_plane.migrate import upgrade
from control_plane.models import RefreshToken, User
from serve_apps.gateway import identity as identity_module
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.identity import Identity, Jwks

pytestmark = pytest.mark.anyio
SIGNER = Ed25519PrivateKey.generate()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _jwks(request: httpx.Request) -> httpx.Response:
    public = json.loads(OKPAlgorithm.to_jwk(SIGNER.public_key()))
    return httpx.Response(200, json={"keys": [{**public, "kid": "k1"}]})


@pytest.fixture
def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Identity:
    url = f"sqlite+aiosqlite:///{tmp_path / 'atrium.db'}"
    upgrade(url)
    secrets = tmp_path / "serve-secrets.json"
    secrets.write_text(json.dumps({"database_url": url, "internal_token": "t" * 32}))
    monkeypatch.setattr(
        identity_module, "Jwks", lambda url: Jwks(url, transport=httpx.MockTransport(_jwks))
    )
    config = GatewayConfig(
        control_url="http://control.test",
        secrets_file=str(secrets),
        plans_file=str(Settings(_env_file=None).plans_file),
        jwks_url="http://control.test/.well-known/jwks.json",
        jwt_issuer="atrium",
        jwt_audience="atrium-api",
    )
    return Identity(config)


def _token(session_id: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "usr_admin",
        "tid": None,
        "role": "platform_admin",
        "iss": "atrium",
        "aud": "atrium-api",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": f"j-{session_id}",
        "typ": "access",
        "sid": session_id,
    }
    return jwt.encode(claims, SIGNER, algorithm="EdDSA", headers={"kid": "k1"})


async def _sign_in(identity: Identity, *families: str) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    async with identity.db.sessionmaker() as session, session.begin():
        session.add(User(id="usr_admin", email="a@x.io", password_hash="-", role="platform_admin"))
        await session.flush()
        for n, family in enumerate(families):
            session.add(
                RefreshToken(
                    id=f"rtk_{n}",
                    user_id="usr_admin",
                    family_id=family,
                    token_hash=f"{n:064d}",
                    expires_at=later,
                    family_expires_at=later,
                )
            )


async def test_an_ended_sessions_access_token_is_refused(identity: Identity) -> None:
    await _sign_in(identity, "rtf_kept", "rtf_ended")
    authenticate = identity.authenticator.authenticate
    try:
        for family in ("rtf_kept", "rtf_ended"):
            assert (await authenticate(f"Bearer {_token(family)}")).session_id == family
        async with identity.db.sessionmaker() as session, session.begin():  # logout
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == "rtf_ended")
                .values(revoked_at=datetime.now(UTC))
            )
        identity.authenticator.invalidate("sessions")  # as heard over Redis, or the epoch
        with pytest.raises(Unauthorized, match="session has ended"):
            await authenticate(f"Bearer {_token('rtf_ended')}")
        assert (await authenticate(f"Bearer {_token('rtf_kept')}")).session_id == "rtf_kept"
    finally:
        await identity.close()
