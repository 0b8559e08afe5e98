from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text

from tests.api.world import Api, World, build_world, run_async
from tests.support import PASSWORD

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


def _wrong(secret: str) -> str:
    valid = {_code(secret, step) for step in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def _old_session(world: World, role: str) -> str:
    member = world.acme[role]
    token: str = world.api.services.tokens.issue(
        user_id=member.id,
        tenant_id=world.acme.id,
        role=role,
        session_id="rtf_elsewhere",
        auth_time=int(time.time()) - 3600,
    )
    return token


def test_enabling_mfa_ends_the_other_sessions(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    here = api.login(dev.email).json()
    elsewhere = api.login(dev.email).json()
    setup = api.post("/api/v1/auth/mfa/setup", here["access_token"]).json()
    enabled = api.post(
        "/api/v1/auth/mfa/enable",
        here["access_token"],
        json={"code": _code(setup["secret"])},
    )
    assert enabled.status_code == 204
    gone = api.post("/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]})
    assert gone.status_code == 401
    assert api.get("/api/v1/auth/me", elsewhere["access_token"]).status_code == 401
    assert api.get("/api/v1/auth/me", here["access_token"]).status_code == 200
    kept = api.post("/api/v1/auth/refresh", json={"refresh_token": here["refresh_token"]})
    assert kept.status_code == 200


def test_mfa_changes_from_an_old_session_need_the_password(world: World) -> None:
    api = world.api
    old = _old_session(world, "developer")
    secret = api.post("/api/v1/auth/mfa/setup", old).json()["secret"]
    refused = api.post("/api/v1/auth/mfa/enable", old, json={"code": _code(secret)})
    assert refused.status_code == 401
    assert refused.json()["code"] == "reauthentication_required"
    body = {"code": _code(secret), "current_password": PASSWORD}
    assert api.post("/api/v1/auth/mfa/enable", old, json=body).status_code == 204
    off = api.post("/api/v1/auth/mfa/disable", old, json={"code": _code(secret, 1)})
    assert off.json()["code"] == "reauthentication_required"
    off_body = {"code": _code(secret, 1), "current_password": PASSWORD}
    assert api.post("/api/v1/auth/mfa/disable", old, json=off_body).status_code == 204


def test_code_guesses_on_disable_are_throttled_and_audited(make_client: Any) -> None:
    api = make_client(totp_max_failures=3)
    world = build_world(api)
    dev = world.acme["developer"]
    secret = _enable(api, dev.token)
    for _ in range(3):
        guess = api.post("/api/v1/auth/mfa/disable", dev.token, json={"code": _wrong(secret)})
        assert guess.status_code == 401 and guess.json()["code"] == "invalid_totp"
    blocked = api.post("/api/v1/auth/mfa/disable", dev.token, json={"code": _code(secret)})
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited" and int(blocked.headers["retry-after"]) > 0
    assert api.get("/api/v1/auth/me", dev.token).json()["mfa_enabled"] is True
    audit = api.get(
        "/api/v1/audit-events",
        world.acme["owner"].token,
        params={"action": "auth.mfa_disable", "limit": 200},
    ).json()["items"]
    reasons = sorted(e["details"]["reason"] for e in audit if e["outcome"] == "failure")
    assert reasons == ["bad_totp"] * 3 + ["throttled"]
    assert {e["target_id"] for e in audit} == {dev.id}


def test_the_code_budget_is_per_user_across_every_endpoint(make_client: Any) -> None:
    api = make_client(totp_max_failures=4)
    world = build_world(api)
    dev = world.acme["developer"]
    secret = _enable(api, dev.token)
    wrong = _wrong(secret)
    assert api.login(dev.email, totp_code=wrong).json()["code"] == "invalid_totp"
    assert api.login(dev.email, totp_code=wrong).json()["code"] == "invalid_totp"
    stale = _old_session(world, "developer")
    step_up = {"password": "a brand new passphrase", "current_password": PASSWORD}
    changed = api.patch(f"/api/v1/users/{dev.id}", stale, json={**step_up, "totp_code": wrong})
    assert changed.json()["code"] == "invalid_totp"
    off = api.post("/api/v1/auth/mfa/disable", dev.token, json={"code": wrong})
    assert off.json()["code"] == "invalid_totp"
    # the budget is spent: even the right code waits, wherever it is sent
    assert api.login(dev.email, totp_code=_code(secret)).status_code == 429
    # another user is not affected
    other = world.acme["viewer"]
    assert api.login(other.email).status_code == 200


def test_confirming_setup_is_throttled(make_client: Any) -> None:
    api = make_client(totp_max_failures=2)
    world = build_world(api)
    token = world.acme["admin"].token
    secret = api.post("/api/v1/auth/mfa/setup", token).json()["secret"]
    for _ in range(2):
        bad = api.post("/api/v1/auth/mfa/enable", token, json={"code": _wrong(secret)})
        assert bad.status_code == 401
    blocked = api.post("/api/v1/auth/mfa/enable", token, json={"code": _code(secret)})
    assert blocked.status_code == 429
    assert api.get("/api/v1/auth/me", token).json()["mfa_enabled"] is False


@pytest.fixture(params=["local", "redis"])
def guarded(request: pytest.FixtureRequest, make_client: Callable[..., Api]) -> Api:
    """A small code budget, counted in process or in Redis (shared by processes)."""
    if request.param == "local":
        return make_client(totp_max_failures=3)
    redis_url: str = request.getfixturevalue("redis_url")
    namespace = f"t{uuid.uuid4().hex[:12]}"
    return make_client(totp_max_failures=3, redis_url=redis_url, redis_namespace=namespace)


def test_parallel_code_guesses_get_at_most_the_budget(guarded: Api) -> None:
    world = build_world(guarded)
    dev = world.acme["developer"]
    secret = _enable(guarded, dev.token)
    wrong = _wrong(secret)

    async def guess(client: httpx.AsyncClient) -> int:
        body = {"code": wrong}
        headers = {"Authorization": f"Bearer {dev.token}"}
        response = await client.post("/api/v1/auth/mfa/disable", json=body, headers=headers)
        return response.status_code

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=guarded.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return list(await asyncio.gather(*(guess(client) for _ in range(30))))

    statuses = Counter(run_async(guarded, burst))
    assert statuses[401] <= 3
    assert statuses[401] + statuses[429] == 30
