from collections.abc import Callable

from argon2 import PasswordHasher

from tests.api.world import Api, World
from tests.support import ADMIN_EMAIL, PASSWORD


def test_login_returns_a_token_pair(api: Api) -> None:
    response = api.login(ADMIN_EMAIL.upper())
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"].startswith("rt_")
    me = api.get("/api/v1/auth/me", body["access_token"]).json()
    assert me == {
        "id": me["id"],
        "email": ADMIN_EMAIL,
        "tenant_id": None,
        "role": "platform_admin",
        "mfa_enabled": False,
    }


def test_wrong_password_and_unknown_account_look_the_same(api: Api) -> None:
    wrong = api.login(ADMIN_EMAIL, "not the password at all")
    unknown = api.login("nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_missing_form_field_is_422(api: Api) -> None:
    response = api.client.post("/api/v1/auth/token", data={"username": ADMIN_EMAIL})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


def test_failed_logins_are_throttled_per_account(world: World) -> None:
    api = world.api
    email = world.acme["developer"].email
    for _ in range(5):
        assert api.login(email, "wrong password!!").status_code == 401
    blocked = api.login(email)  # even the right password now waits
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    assert blocked.headers["ratelimit-remaining"] == "0"
    assert blocked.headers["ratelimit-limit"] == "5"
    # another account from the same address is not locked out by this one
    assert api.login(world.acme["viewer"].email).status_code == 200


def test_failed_logins_are_throttled_per_address(make_client: Callable[..., Api]) -> None:
    api = make_client(login_max_failures_per_address=3, login_max_failures_per_account=100)
    for n in range(3):
        assert api.login(f"user{n}@example.com", "wrong password!!").status_code == 401
    blocked = api.login(ADMIN_EMAIL)
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers


def test_success_resets_the_account_counter(world: World) -> None:
    api = world.api
    email = world.acme["developer"].email
    for _ in range(4):
        api.login(email, "wrong password!!")
    assert api.login(email).status_code == 200
    for _ in range(4):
        api.login(email, "wrong password!!")
    assert api.login(email).status_code == 200


def test_failed_logins_are_audited(world: World) -> None:
    api = world.api
    api.login(world.acme["viewer"].email, "wrong password!!")
    events = api.get(
        "/api/v1/audit-events", world.acme["owner"].token, params={"action": "auth.login"}
    ).json()["items"]
    failures = [e for e in events if e["outcome"] == "failure"]
    assert failures
    assert failures[0]["target_id"] == world.acme["viewer"].id
    assert failures[0]["details"]["reason"] == "bad_password"
    assert failures[0]["client_address"] == "testclient"
    assert failures[0]["request_id"]


def test_password_is_rehashed_when_parameters_change(make_client: Callable[..., Api]) -> None:
    weak = make_client()
    assert weak.login(ADMIN_EMAIL).status_code == 200
    stronger = make_client(argon2_time_cost=2, argon2_memory_kib=2048)
    assert stronger.login(ADMIN_EMAIL).status_code == 200
    stored = _admin_hash(stronger)
    assert not PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).check_needs_rehash(
        stored
    )
    assert stored.startswith("$argon2id$")
    assert stronger.login(ADMIN_EMAIL).status_code == 200


def _admin_hash(api: Api) -> str:
    async def read() -> str:
        from control_plane.kit.repository import PLATFORM
        from control_plane.user.repository import UserRepository

        async with api.services.db.sessionmaker() as session:
            user = await UserRepository(session, PLATFORM).by_email(ADMIN_EMAIL)
            assert user is not None
            return user.password_hash

    portal = api.client.portal
    assert portal is not None
    result: str = portal.call(read)
    return result


def test_suspended_tenant_cannot_log_in(world: World) -> None:
    api = world.api
    api.patch(f"/api/v1/tenants/{world.acme.id}", world.admin_token, json={"status": "suspended"})
    response = api.login(world.acme["owner"].email, PASSWORD)
    assert response.status_code == 403
    assert response.json()["code"] == "tenant_suspended"
