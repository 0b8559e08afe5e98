"""Every response that carries a secret tells caches (shared ones, the browser's) not to
keep it: `Cache-Control: no-store` and, for HTTP/1.0 caches, `Pragma: no-cache`."""

from __future__ import annotations

import httpx2 as httpx

from tests.api.world import World
from tests.support import ADMIN_EMAIL


def _not_stored(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_responses_with_secrets_are_not_stored(world: World) -> None:
    api, owner = world.api, world.acme["owner"].token
    login = api.login(ADMIN_EMAIL)
    _not_stored(login, 200)
    refresh_token = login.json()["refresh_token"]
    _not_stored(api.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token}), 200)
    body = {"name": "k", "scopes": ["inference"]}
    _not_stored(api.post("/api/v1/api-keys", owner, json=body), 201)
    hook = {"url": "https://hooks.example.com/atrium", "events": ["*"]}
    _not_stored(api.post("/api/v1/webhooks", owner, json=hook), 201)
    _not_stored(api.post("/api/v1/auth/mfa/setup", owner), 200)


def test_other_responses_may_be_cached_as_usual(world: World) -> None:
    response = world.api.get("/api/v1/auth/me", world.acme["owner"].token)
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("cache-control", "")
