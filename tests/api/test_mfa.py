from __future__ import annotations

import time

import pyotp
from sqlalchemy import text

from tests.api.world import Api, World

STEP = 30


def _code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_steps * STEP)


def _enable(api: Api, token: str) -> str:
    setup = api.post("/api/v1/auth/mfa/setup", token)
    assert setup.status_code == 200, setup.text
    body = setup.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/Atrium:")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    enabled = api.post("/api/v1/auth/mfa/enable", token, json={"code": _code(body["secret"], -1)})
    assert enabled.status_code == 204, enabled.text
    secret: str = body["secret"]
    return secret


def test_login_with_mfa_needs_a_fresh_code(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    secret = _enable(api, dev.token)
    assert api.get("/api/v1/auth/me", dev.token).json()["mfa_enabled"] is True

    missing = api.login(dev.email)
    assert missing.status_code == 401
    assert missing.json()["code"] == "mfa_required"
    wrong = api.login(dev.email, totp_code="000000" if _code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_totp"

    code = _code(secret)
    assert api.login(dev.email, totp_code=code).status_code == 200
    replay = api.login(dev.email, totp_code=code)
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_totp"


def test_codes_within_one_step_are_accepted_but_older_ones_are_not(world: World) -> None:
    api = world.api
    dev = world.acme["viewer"]
    secret = _enable(api, dev.token)  # consumed the previous step's code
    assert api.login(dev.email, totp_code=_code(secret, -2)).json()["code"] == "invalid_totp"
    assert api.login(dev.email, totp_code=_code(secret, +1)).status_code == 200
    # the current step is older than the one just used, so it can never be accepted now
    assert api.login(dev.email, totp_code=_code(secret)).json()["code"] == "invalid_totp"


def test_enable_refuses_a_wrong_code_and_keeps_mfa_off(world: World) -> None:
    api = world.api
    token = world.acme["admin"].token
    secret = api.post("/api/v1/auth/mfa/setup", token).json()["secret"]
    bad = "123456" if _code(secret) != "123456" else "654321"
    response = api.post("/api/v1/auth/mfa/enable", token, json={"code": bad})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_totp"
    assert api.get("/api/v1/auth/me", token).json()["mfa_enabled"] is False
    assert api.post("/api/v1/auth/mfa/enable", token, json={"code": "12ab"}).status_code == 422


def test_secret_is_encrypted_at_rest(world: World) -> None:
    api = world.api
    secret = _enable(api, world.acme["owner"].token)

    async def stored() -> str:
        async with api.services.db.engine.connect() as conn:
            row = await conn.execute(
                text("SELECT mfa_secret FROM users WHERE id = :id"), {"id": world.acme["owner"].id}
            )
            value: str = row.scalar_one()
            return value

    assert api.client.portal is not None
    sealed = api.client.portal.call(stored)
    assert secret not in sealed
    assert api.services.secrets.open(sealed) == secret


def test_disable_needs_a_code_then_login_needs_none(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    secret = _enable(api, dev.token)
    assert (
        api.post("/api/v1/auth/mfa/disable", dev.token, json={"code": "000001"}).status_code == 401
    )
    assert (
        api.post("/api/v1/auth/mfa/disable", dev.token, json={"code": _code(secret)}).status_code
        == 204
    )
    assert api.login(dev.email).status_code == 200


def test_mfa_routes_refuse_api_keys(world: World) -> None:
    api = world.api
    key = api.new_key(world.acme["developer"].token, ["models:read"])["key"]
    response = api.post("/api/v1/auth/mfa/setup", key)
    assert response.status_code == 403


def test_enable_before_setup_is_a_conflict(world: World) -> None:
    response = world.api.post(
        "/api/v1/auth/mfa/enable", world.acme["viewer"].token, json={"code": "123456"}
    )
    assert response.status_code == 409
