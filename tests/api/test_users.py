from __future__ import annotations

from typing import Any

from tests.api.world import World
from tests.support import ADMIN_EMAIL, PASSWORD


def _user(world: World, role: str) -> dict[str, Any]:
    response = world.api.get(f"/api/v1/users/{world.acme[role].id}", world.acme["owner"].token)
    body: dict[str, Any] = response.json()
    return body


def test_owner_adds_a_member_with_a_normalised_email(world: World) -> None:
    api = world.api
    user = api.created(
        "/api/v1/users",
        world.acme["owner"].token,
        {"email": "New.Person@Acme.Example.com", "password": PASSWORD, "role": "developer"},
    )
    assert user["email"] == "new.person@acme.example.com"
    assert user["tenant_id"] == world.acme.id
    assert api.login("NEW.person@acme.example.com").status_code == 200


def test_duplicate_email_in_the_same_tenant_is_a_conflict(world: World) -> None:
    body = {"email": world.acme["viewer"].email.upper(), "password": PASSWORD, "role": "viewer"}
    response = world.api.post("/api/v1/users", world.acme["owner"].token, json=body)
    assert response.status_code == 409
    assert response.json()["field"] == "email"


def test_another_tenants_email_can_be_neither_probed_nor_squatted(world: World) -> None:
    api = world.api
    taken = world.globex["owner"].email
    other = "another passphrase for acme"
    body = {"email": taken.upper(), "password": other, "role": "viewer"}
    made = api.created("/api/v1/users", world.acme["owner"].token, body)
    assert made["email"] == taken and made["tenant_id"] == world.acme.id
    # the address still signs its first holder in, with their own password and no tenant
    me = api.get("/api/v1/auth/me", api.token(taken)).json()
    assert me["tenant_id"] == world.globex.id
    assert api.get("/api/v1/auth/me", api.token(taken, other)).json()["id"] == made["id"]
    # a tenant may be named; the other tenant's password does not open this one
    assert api.login(taken, other, tenant="globex").status_code == 401
    named = api.token(taken, tenant="globex")
    assert api.get("/api/v1/auth/me", named).json()["tenant_id"] == world.globex.id
    # an email change to an address another tenant uses answers like any other change
    dev = world.acme["developer"]
    moved = api.patch(
        f"/api/v1/users/{dev.id}",
        world.acme["owner"].token,
        json={"email": "Owner@Acme.example.com"},
    )
    assert moved.status_code == 409  # this tenant's own owner
    elsewhere = {"email": "ops@globex.example.com", "password": PASSWORD, "role": "admin"}
    api.created("/api/v1/users", world.admin_token, {**elsewhere, "tenant_id": world.globex.id})
    moved = api.patch(
        f"/api/v1/users/{dev.id}", world.acme["owner"].token, json={"email": elsewhere["email"]}
    )
    assert moved.status_code == 200


def test_one_email_with_one_password_in_two_tenants_needs_the_tenant(world: World) -> None:
    api = world.api
    email = world.globex["owner"].email
    body = {"email": email, "password": PASSWORD, "role": "viewer"}
    made = api.created("/api/v1/users", world.acme["owner"].token, body)
    ambiguous = api.login(email)
    assert ambiguous.status_code == 401
    assert ambiguous.json()["code"] == "tenant_required"
    mine = api.get("/api/v1/auth/me", api.token(email, tenant="acme")).json()
    assert mine["id"] == made["id"]
    assert api.login(email, tenant="no-such-tenant").status_code == 401


def test_platform_admin_emails_stay_unique_among_admins(world: World) -> None:
    api = world.api
    body = {"email": ADMIN_EMAIL, "password": PASSWORD, "role": "platform_admin"}
    assert api.post("/api/v1/users", world.admin_token, json=body).status_code == 409
    # a tenant may use the address; the platform admin still signs in as before
    tenant_body = {"email": ADMIN_EMAIL, "password": "a tenant's own password", "role": "viewer"}
    api.created("/api/v1/users", world.acme["owner"].token, tenant_body)
    assert api.get("/api/v1/auth/me", api.token(ADMIN_EMAIL)).json()["role"] == "platform_admin"


def test_short_password_is_refused(world: World) -> None:
    body = {"email": "short@acme.example.com", "password": "elevenchars", "role": "viewer"}
    response = world.api.post("/api/v1/users", world.acme["owner"].token, json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


def test_admin_cannot_make_owners_and_developers_cannot_manage_users(world: World) -> None:
    api = world.api
    body = {"email": "boss@acme.example.com", "password": PASSWORD, "role": "owner"}
    assert api.post("/api/v1/users", world.acme["admin"].token, json=body).status_code == 403
    assert api.get("/api/v1/users", world.acme["developer"].token).status_code == 403
    body["role"] = "viewer"
    assert api.post("/api/v1/users", world.acme["developer"].token, json=body).status_code == 403


def test_tenant_members_cannot_place_users_in_other_tenants(world: World) -> None:
    body = {
        "email": "spy@acme.example.com",
        "password": PASSWORD,
        "role": "viewer",
        "tenant_id": world.globex.id,
    }
    response = world.api.post("/api/v1/users", world.acme["owner"].token, json=body)
    assert response.status_code == 403
    ids = [
        u["id"] for u in world.api.get("/api/v1/users", world.globex["owner"].token).json()["items"]
    ]
    assert ids == [world.globex["owner"].id]


def test_mass_assignment_is_refused_and_nothing_changes(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    before = _user(world, "developer")
    escalate = api.patch(f"/api/v1/users/{dev.id}", dev.token, json={"role": "owner"})
    assert escalate.status_code == 403
    move = api.patch(f"/api/v1/users/{dev.id}", dev.token, json={"tenant_id": world.globex.id})
    assert move.status_code == 422
    assert move.json()["errors"][0]["field"] == "tenant_id"
    sneaky = api.patch(
        f"/api/v1/users/{dev.id}", dev.token, json={"email": "x@acme.example.com", "role": "admin"}
    )
    assert sneaky.status_code == 403
    assert _user(world, "developer") == before


def test_members_change_their_own_password_and_other_sessions_end(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    pair = api.login(dev.email).json()
    new = "an even longer passphrase"
    assert (
        api.patch(f"/api/v1/users/{dev.id}", dev.token, json={"password": new}).status_code == 200
    )
    assert api.login(dev.email).status_code == 401
    assert api.login(dev.email, new).status_code == 200
    stale = api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert stale.status_code == 401
    assert api.get("/api/v1/auth/me", pair["access_token"]).status_code == 401
    # the session that made the change goes on
    assert api.get("/api/v1/auth/me", dev.token).status_code == 200
    other = api.patch(f"/api/v1/users/{world.acme['viewer'].id}", dev.token, json={"password": new})
    assert other.status_code == 403


def test_role_changes_and_the_last_owner(world: World) -> None:
    api = world.api
    owner = world.acme["owner"]
    last = api.patch(f"/api/v1/users/{owner.id}", owner.token, json={"role": "admin"})
    assert last.status_code == 409
    assert api.delete(f"/api/v1/users/{owner.id}", owner.token).status_code == 409
    promoted = api.patch(
        f"/api/v1/users/{world.acme['admin'].id}", owner.token, json={"role": "owner"}
    )
    assert promoted.json()["role"] == "owner"
    assert (
        api.patch(f"/api/v1/users/{owner.id}", owner.token, json={"role": "admin"}).status_code
        == 200
    )
    # the role change is live at once for the demoted user's existing token
    assert api.get(f"/api/v1/users/{world.acme['viewer'].id}", owner.token).status_code == 200
    demoted_dev = api.patch(
        f"/api/v1/users/{world.acme['developer'].id}", owner.token, json={"role": "viewer"}
    )
    assert demoted_dev.status_code == 200
    assert api.get("/api/v1/auth/me", world.acme["developer"].token).json()["role"] == "viewer"


def test_admin_cannot_touch_owners(world: World) -> None:
    api = world.api
    owner_id = world.acme["owner"].id
    admin = world.acme["admin"].token
    assert api.patch(f"/api/v1/users/{owner_id}", admin, json={"role": "viewer"}).status_code == 403
    assert api.delete(f"/api/v1/users/{owner_id}", admin).status_code == 403


def test_admin_cannot_take_over_an_owner_account(world: World) -> None:
    api = world.api
    owner = world.acme["owner"]
    admin = world.acme["admin"].token
    mine = "the admin's chosen password"
    for change in ({"password": mine}, {"email": "taken@acme.example.com"}):
        refused = api.patch(f"/api/v1/users/{owner.id}", admin, json=change)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden"
    assert api.login(owner.email, mine).status_code == 401
    assert api.login("taken@acme.example.com", mine).status_code == 401
    assert api.login(owner.email).status_code == 200
    # another owner may still change it
    second = api.created(
        "/api/v1/users",
        owner.token,
        {"email": "second.owner@acme.example.com", "password": PASSWORD, "role": "owner"},
    )
    second_token = api.token(second["email"])
    assert (
        api.patch(f"/api/v1/users/{owner.id}", second_token, json={"password": mine}).status_code
        == 200
    )


def test_platform_admin_creates_users_anywhere(world: World) -> None:
    api = world.api
    body = {"email": "ops@globex.example.com", "password": PASSWORD, "role": "admin"}
    missing = api.post("/api/v1/users", world.admin_token, json=body)
    assert missing.status_code == 422
    assert missing.json()["field"] == "tenant_id"
    nowhere = api.post("/api/v1/users", world.admin_token, json={**body, "tenant_id": "ten_none"})
    assert nowhere.status_code == 404
    made = api.created("/api/v1/users", world.admin_token, {**body, "tenant_id": world.globex.id})
    assert made["tenant_id"] == world.globex.id
    everyone = api.get("/api/v1/users", world.admin_token, params={"limit": 200}).json()["items"]
    assert len(everyone) == 1 + 4 + 1 + 1


def test_the_last_platform_admin_stays(world: World) -> None:
    api = world.api
    me = api.get("/api/v1/auth/me", world.admin_token).json()
    assert api.delete(f"/api/v1/users/{me['id']}", world.admin_token).status_code == 409
    body = {"email": "second@platform.example.com", "password": PASSWORD, "role": "platform_admin"}
    second = api.created("/api/v1/users", world.admin_token, body)
    assert second["tenant_id"] is None
    assert api.delete(f"/api/v1/users/{second['id']}", world.admin_token).status_code == 204
