from __future__ import annotations

from tests.api.world import World


def test_admin_manages_tenants(world: World) -> None:
    api, admin = world.api, world.admin_token
    listed = api.get("/api/v1/tenants", admin, params={"limit": 1}).json()
    assert len(listed["items"]) == 1
    assert listed["next_cursor"]
    rest = api.get("/api/v1/tenants", admin, params={"cursor": listed["next_cursor"]}).json()
    assert {t["slug"] for t in listed["items"] + rest["items"]} == {"acme", "globex"}
    assert rest["next_cursor"] is None
    renamed = api.patch(f"/api/v1/tenants/{world.globex.id}", admin, json={"name": "Globex Corp"})
    assert renamed.json()["name"] == "Globex Corp"


def test_slug_is_unique(world: World) -> None:
    response = world.api.post(
        "/api/v1/tenants", world.admin_token, json={"name": "Again", "slug": "acme"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_members_read_only_their_own_tenant(world: World) -> None:
    api = world.api
    token = world.acme["viewer"].token
    assert api.get(f"/api/v1/tenants/{world.acme.id}", token).json()["slug"] == "acme"
    assert [t["slug"] for t in api.get("/api/v1/tenants", token).json()["items"]] == ["acme"]
    assert api.get(f"/api/v1/tenants/{world.globex.id}", token).status_code == 404


def test_members_cannot_govern_tenants(world: World) -> None:
    api = world.api
    owner = world.acme["owner"].token
    assert api.post("/api/v1/tenants", owner, json={"name": "X", "slug": "xxx"}).status_code == 403
    patch = api.patch(f"/api/v1/tenants/{world.acme.id}", owner, json={"plan": "enterprise"})
    assert patch.status_code == 403
    assert api.get(f"/api/v1/tenants/{world.acme.id}", owner).json()["plan"] == "free"


def test_deleting_a_tenant_removes_its_people_but_keeps_the_audit(world: World) -> None:
    api = world.api
    key = api.new_key(world.acme["developer"].token, ["inference"])["key"]
    assert api.delete(f"/api/v1/tenants/{world.acme.id}", world.admin_token).status_code == 204
    assert api.get(f"/api/v1/tenants/{world.acme.id}", world.admin_token).status_code == 404
    assert api.get("/api/v1/auth/me", key).status_code == 401
    assert api.get("/api/v1/auth/me", world.acme["owner"].token).status_code == 401
    assert api.login(world.acme["owner"].email).status_code == 401
    trail = api.get("/api/v1/audit-events", world.admin_token, params={"action": "tenant.delete"})
    assert trail.json()["items"][0]["target_id"] == world.acme.id


def test_bad_cursor_and_limit(world: World) -> None:
    api = world.api
    assert api.get("/api/v1/tenants", world.admin_token, params={"limit": 500}).status_code == 422
    assert (
        api.get("/api/v1/tenants", world.admin_token, params={"cursor": "%%%"}).status_code == 422
    )


def test_a_json_typo_names_the_position_and_the_problem(world: World) -> None:
    response = world.api.post(
        "/api/v1/tenants",
        world.admin_token,
        content=b'{"name": "Typo",, "slug": "typo"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [
        {
            "field": "body",
            "message": "not valid JSON at character 16: "
            "Expecting property name enclosed in double quotes",
        }
    ]
