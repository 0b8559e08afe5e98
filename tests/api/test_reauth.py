"""Changing one's own password, email or MFA needs proof of the person, not just a token."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pyotp
from sqlalchemy import update

from control_plane.models import RefreshToken
from tests.api.world import Api, Member, World, build_world, run_async
from tests.support import PASSWORD

NEW = "an entirely new passphrase"


def _old_login(world: World, role: str, *, age_s: int = 3600) -> str:
    """An access token whose sign-in happened ``age_s`` ago (as a stolen one might be)."""
    member = world.acme[role]
    token: str = world.api.services.tokens.issue(
        user_id=member.id,
        tenant_id=world.acme.id,
        role=role,
        session_id="rtf_stolen",
        auth_time=int(time.time()) - age_s,
    )
    return token


def _auth_time(token: str) -> int:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    value: int = claims["auth_time"]
    return value


def _change(api: Api, member: Member, token: str, **body: Any) -> Any:
    return api.patch(f"/api/v1/users/{member.id}", token, json=body)


def test_an_old_session_cannot_change_the_password_without_the_current_one(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    stolen = _old_login(world, "developer")
    refused = _change(api, dev, stolen, password=NEW)
    assert refused.status_code == 401
    assert refused.json()["code"] == "reauthentication_required"
    wrong = _change(api, dev, stolen, password=NEW, current_password="not my password!")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "reauthentication_required"
    assert api.login(dev.email, NEW).status_code == 401
    assert _change(api, dev, stolen, password=NEW, current_password=PASSWORD).status_code == 200
    assert api.login(dev.email, NEW).status_code == 200


def test_an_old_session_cannot_change_the_email_without_the_current_password(
    world: World,
) -> None:
    api = world.api
    viewer = world.acme["viewer"]
    stolen = _old_login(world, "viewer")
    refused = _change(api, viewer, stolen, email="attacker@evil.example.com")
    assert refused.json()["code"] == "reauthentication_required"
    assert api.get("/api/v1/auth/me", viewer.token).json()["email"] == viewer.email
    done = _change(api, viewer, stolen, email="me@acme.example.com", current_password=PASSWORD)
    assert done.status_code == 200 and done.json()["email"] == "me@acme.example.com"
    # the proof is not an account attribute: it is neither stored, evented nor audited
    audit = api.get("/api/v1/audit-events", world.acme["owner"].token, params={"limit": 200})
    assert PASSWORD not in audit.text
    events = api.get("/api/v1/events", world.acme["owner"].token, params={"limit": 200})
    assert PASSWORD not in events.text


def test_a_fresh_login_needs_no_current_password(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    assert time.time() - _auth_time(dev.token) < 300
    assert _change(api, dev, dev.token, email="fresh@acme.example.com").status_code == 200


def test_with_mfa_on_the_current_password_needs_a_code_too(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    secret = api.post("/api/v1/auth/mfa/setup", dev.token).json()["secret"]
    code = pyotp.TOTP(secret).at(time.time() - 30)
    assert api.post("/api/v1/auth/mfa/enable", dev.token, json={"code": code}).status_code == 204
    stolen = _old_login(world, "developer")
    no_code = _change(api, dev, stolen, password=NEW, current_password=PASSWORD)
    assert no_code.status_code == 401 and no_code.json()["code"] == "mfa_required"
    bad = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    wrong = _change(api, dev, stolen, password=NEW, current_password=PASSWORD, totp_code=bad)
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_totp"
    good = pyotp.TOTP(secret).now()
    ok = _change(api, dev, stolen, password=NEW, current_password=PASSWORD, totp_code=good)
    assert ok.status_code == 200, ok.text


def test_changes_to_others_need_no_reauthentication(world: World) -> None:
    api = world.api
    owner_old = _old_login(world, "owner")
    assert _change(api, world.acme["viewer"], owner_old, password=NEW).status_code == 200


def test_the_current_password_is_throttled(make_client: Any) -> None:
    api = make_client(login_max_failures_per_account=3)
    world = build_world(api)
    dev = world.acme["developer"]
    stolen = _old_login(world, "developer")
    for _ in range(3):
        wrong = _change(api, dev, stolen, password=NEW, current_password="guess guess guess")
        assert wrong.status_code == 401
    blocked = _change(api, dev, stolen, password=NEW, current_password=PASSWORD)
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited" and "retry-after" in blocked.headers


def test_refresh_keeps_the_time_of_the_sign_in(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    pair = api.login(dev.email).json()
    signed_in = _auth_time(pair["access_token"])
    fresh = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert _auth_time(fresh.json()["access_token"]) == signed_in
    # a session that signed in an hour ago stays an hour old however often it refreshes

    async def backdate() -> None:
        then = datetime.now(UTC) - timedelta(hours=1)
        async with api.services.db.engine.begin() as conn:
            stmt = update(RefreshToken).where(RefreshToken.user_id == dev.id)
            await conn.execute(stmt.values(created_at=then))

    run_async(api, backdate)
    again = api.post("/api/v1/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]})
    assert again.status_code == 200
    token = again.json()["access_token"]
    assert time.time() - _auth_time(token) >= 3600
    assert _change(api, dev, token, password=NEW).json()["code"] == "reauthentication_required"
