from pathlib import Path

from tests.api.world import Api, World
from tests.support import make_settings


def test_healthz_and_readyz_answer(api: Api) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_request_id_is_echoed_or_generated(api: Api) -> None:
    echoed = api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = api.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] not in ("", "bad id with spaces")
    problem = api.get("/api/v1/auth/me", headers={"X-Request-ID": "req-9"})
    assert problem.json()["request_id"] == "req-9"


def test_metrics_label_route_templates_not_ids(world: World) -> None:
    api = world.api
    api.get(f"/api/v1/tenants/{world.acme.id}", world.admin_token)
    api.get("/no/such/route")
    text = api.get("/metrics").text
    assert 'route="/api/v1/tenants/{tenant_id}"' in text
    assert 'route="<unmatched>"' in text
    assert "atrium_http_request_duration_seconds_bucket" in text
    assert world.acme.id not in text


def test_unknown_route_and_method_are_problems(api: Api) -> None:
    missing = api.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    wrong = api.call("PUT", "/healthz")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_validation_errors_name_the_field(world: World) -> None:
    response = world.api.post(
        "/api/v1/tenants", world.admin_token, json={"name": "X", "slug": "Bad Slug"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "slug"
    assert "slug" in body["detail"]


def test_malformed_json_is_a_422_not_a_500(world: World) -> None:
    response = world.api.post(
        "/api/v1/tenants",
        world.admin_token,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_readyz_is_503_when_the_database_is_missing_or_unmigrated(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from control_plane.app import create_app

    for url in (
        f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/atrium.db",  # unreachable
        f"sqlite+aiosqlite:///{tmp_path}/empty.db",  # reachable, never migrated
    ):
        settings = make_settings(tmp_path / "home", url, bootstrap_admin_email=None)
        with TestClient(create_app(settings)) as client:
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["code"] == "not_ready"
            assert client.get("/healthz").status_code == 200
