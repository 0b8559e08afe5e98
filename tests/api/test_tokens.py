"""Access and refresh tokens, and every way of presenting a bad one."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from control_plane.auth.keyring import KeyRing
from tests.api.world import Api, World, run_async
from tests.support import ADMIN_EMAIL

ME = "/api/v1/auth/me"


def _signing(api: Api) -> tuple[str, Ed25519PrivateKey]:
    key = api.services.keyring.signing_key()
    return key.kid, key.private


def _claims(api: Api, world: World, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": world.acme["owner"].id,
        "tid": world.acme.id,
        "role": "owner",
        "iss": api.settings.jwt_issuer,
        "aud": api.settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j1",
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _forge(api: Api, world: World, **changes: Any) -> str:
    kid, private = _signing(api)
    return jwt.encode(
        _claims(api, world, **changes), private, algorithm="EdDSA", headers={"kid": kid}
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _refused(api: Api, token: str, status: int = 401) -> None:
    response = api.get(ME, token)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_well_formed_forged_token_is_accepted_so_the_attacks_below_mean_something(
    world: World,
) -> None:
    assert world.api.get(ME, _forge(world.api, world)).status_code == 200


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": -120}, id="expired"),
        pytest.param({"nbf": 600}, id="not-yet-valid"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example.com"}, id="wrong-issuer"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"typ": "refresh"}, id="not-an-access-token"),
        pytest.param({"tid": "ten_other"}, id="tenant-mismatch"),
        pytest.param({"sub": "usr_nobody"}, id="unknown-user"),
    ],
)
def test_invalid_claims_are_refused(world: World, changes: dict[str, Any]) -> None:
    # times are offsets from now, taken when the test runs (not when it was collected:
    # a long suite outlived a 10-minute "not yet valid")
    now = int(time.time())
    timed = {k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in changes.items()}
    _refused(world.api, _forge(world.api, world, **timed))


def test_small_clock_skew_is_tolerated(world: World) -> None:
    token = _forge(world.api, world, nbf=int(time.time()) + 5, iat=int(time.time()) + 5)
    assert world.api.get(ME, token).status_code == 200


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
def test_missing_or_garbled_credentials(api: Api, header: str) -> None:
    response = api.get(ME, headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_alg_none_is_refused(world: World) -> None:
    kid, _ = _signing(world.api)
    token = f"{_b64({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{_b64(_claims(world.api, world))}."
    _refused(world.api, token)


def test_hs256_signed_with_the_public_key_is_refused(world: World) -> None:
    kid, private = _signing(world.api)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "kid": kid, "typ": "JWT"})
    body = _b64(_claims(world.api, world))
    mac = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    _refused(world.api, f"{header}.{body}.{signature}")


def test_unknown_kid_and_foreign_key_are_refused(world: World) -> None:
    stranger = Ed25519PrivateKey.generate()
    claims = _claims(world.api, world)
    _refused(world.api, jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": "key_x"}))
    kid, _ = _signing(world.api)
    _refused(world.api, jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": kid}))


def test_refresh_token_is_not_an_access_token_and_vice_versa(api: Api) -> None:
    pair = api.login(ADMIN_EMAIL).json()
    _refused(api, pair["refresh_token"])
    swapped = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert swapped.status_code == 401


def test_jwks_publishes_the_signing_key(api: Api) -> None:
    token = api.token(ADMIN_EMAIL)
    kid = jwt.get_unverified_header(token)["kid"]
    keys = api.get("/.well-known/jwks.json").json()["keys"]
    match = [k for k in keys if k["kid"] == kid]
    assert match
    assert match[0]["kty"] == "OKP"
    assert match[0]["crv"] == "Ed25519"
    assert "d" not in match[0]  # never the private part
    public = jwt.PyJWK(match[0]).key
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="atrium-api")
    assert claims["sub"]
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] == 900


def test_rotation_signs_with_the_new_key_and_old_tokens_still_verify(api: Api) -> None:
    old_token = api.token(ADMIN_EMAIL)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    ring = KeyRing(Path(api.settings.home_dir) / "keys")  # as `atrium keys rotate` does
    new = ring.rotate(retire_after_s=900)
    api.services.keyring.reload(force=True)
    new_token = api.token(ADMIN_EMAIL)
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid != old_kid
    assert api.get(ME, old_token).status_code == 200
    assert api.get(ME, new_token).status_code == 200
    kids = {k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]}
    assert {old_kid, new.kid} <= kids


def test_retired_key_stops_verifying(api: Api) -> None:
    old_token = api.token(ADMIN_EMAIL)
    KeyRing(Path(api.settings.home_dir) / "keys").rotate(retire_after_s=0)
    api.services.keyring.reload(force=True)
    api.services.tokens._verified.clear()
    _refused(api, old_token)


def test_refresh_rotates_and_reuse_revokes_the_family(world: World) -> None:
    api = world.api
    first = api.login(world.acme["developer"].email).json()
    second = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_pair = second.json()
    assert second_pair["refresh_token"] != first["refresh_token"]
    reuse = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # the thief's replay burned the legitimate holder's newer token too
    after = api.post("/api/v1/auth/refresh", json={"refresh_token": second_pair["refresh_token"]})
    assert after.status_code == 401
    events = api.get(
        "/api/v1/audit-events", world.acme["owner"].token, params={"action": "auth.refresh_reuse"}
    ).json()["items"]
    assert len(events) == 1
    assert events[0]["outcome"] == "failure"


def test_logout_revokes_the_family(world: World) -> None:
    api = world.api
    pair = api.login(world.acme["viewer"].email).json()
    other = api.login(world.acme["viewer"].email).json()
    assert api.post("/api/v1/auth/logout", pair["access_token"]).status_code == 204
    refused = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refused.status_code == 401
    # another sign-in session of the same user is untouched
    kept = api.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert kept.status_code == 200


def test_garbage_refresh_token(api: Api) -> None:
    response = api.post("/api/v1/auth/refresh", json={"refresh_token": "rt_nonsense"})
    assert response.status_code == 401
    assert api.post("/api/v1/auth/refresh", json={}).status_code == 422


def test_logout_refuses_the_sessions_access_tokens_too(world: World) -> None:
    api = world.api
    pair = api.login(world.acme["viewer"].email).json()
    other = api.login(world.acme["viewer"].email).json()
    assert api.get(ME, pair["access_token"]).status_code == 200  # cached as live
    assert api.post("/api/v1/auth/logout", pair["access_token"]).status_code == 204
    refused = api.get(ME, pair["access_token"])
    assert refused.status_code == 401
    assert "session has ended" in refused.json()["detail"]
    assert api.get(ME, other["access_token"]).status_code == 200  # another sign-in lives


def test_refresh_reuse_refuses_the_familys_access_tokens(world: World) -> None:
    api = world.api
    first = api.login(world.acme["developer"].email).json()
    second = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert api.get(ME, second.json()["access_token"]).status_code == 200
    replay = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    # whoever holds the family's access tokens (the thief's, the user's) is out at once
    assert api.get(ME, first["access_token"]).status_code == 401
    assert api.get(ME, second.json()["access_token"]).status_code == 401


def _end_families(api: Api, when: datetime) -> None:
    async def update() -> None:
        async with api.services.db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE refresh_tokens SET family_expires_at = :when"), {"when": when}
            )

    run_async(api, update)


def test_a_session_ends_at_its_absolute_lifetime(api: Api) -> None:
    pair = api.login(ADMIN_EMAIL).json()
    fresh = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert fresh.status_code == 200
    _end_families(api, datetime.now(UTC) - timedelta(seconds=1))  # as if 30 days had passed
    ended = api.post("/api/v1/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]})
    assert ended.status_code == 401
    assert "maximum lifetime" in ended.json()["detail"]


def test_refresh_tokens_never_outlive_their_session(make_client: Callable[..., Api]) -> None:
    api = make_client(refresh_family_lifetime_seconds=3600)
    pair = api.login(ADMIN_EMAIL).json()
    renewed = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    async def expiries() -> list[tuple[datetime, datetime]]:
        async with api.services.db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT expires_at, family_expires_at FROM refresh_tokens")
            )
            return [(_utc(a), _utc(b)) for a, b in rows.all()]

    rows = run_async(api, expiries)
    assert renewed.status_code == 200
    assert len(rows) == 2
    for expires_at, family_ends in rows:  # 14 days asked of each token, 1 hour of the session
        assert expires_at <= family_ends <= datetime.now(UTC) + timedelta(hours=1)


def _utc(value: datetime | str) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_token_responses_are_not_stored(api: Api) -> None:
    login = api.login(ADMIN_EMAIL)
    renewed = api.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    for response in (login, renewed):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
