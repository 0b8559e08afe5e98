"""What `/events` shows depends on what the caller may read elsewhere in the API."""

from __future__ import annotations

from typing import Any

from control_plane.event.service import emit
from tests.api.world import World, run_async
from tests.support import PASSWORD

HOOK_URL = "https://hooks.example.com/secret-path?token=abc"


def _events(world: World, role: str) -> list[dict[str, Any]]:
    response = world.api.get("/api/v1/events", world.acme[role].token, params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _disable_a_webhook(world: World) -> None:
    api = world.api

    async def write() -> None:
        async with api.services.db.session_scope() as session:
            emit(
                session,
                tenant_id=world.acme.id,
                type="webhook.disabled",
                data={"webhook_id": "whk_x", "url": HOOK_URL, "failures": 10},
            )

    run_async(api, write)


def _of(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == type_]


def test_viewers_read_no_other_users_emails_nor_webhook_urls(world: World) -> None:
    api = world.api
    body = {"email": "new.hire@acme.example.com", "password": PASSWORD, "role": "developer"}
    api.created("/api/v1/users", world.acme["owner"].token, body)
    _disable_a_webhook(world)

    seen = _events(world, "viewer")
    assert "new.hire@acme.example.com" not in str(seen)
    assert HOOK_URL not in str(seen)
    created = _of(seen, "user.created")
    others = [d for d in created if d["user_id"] != world.acme["viewer"].id]
    assert others and all(d["email"] is None for d in others)
    # their own address is theirs to see
    assert [d["email"] for d in created if d["user_id"] == world.acme["viewer"].id] == [
        world.acme["viewer"].email
    ]
    assert _of(seen, "webhook.disabled") == [{"webhook_id": "whk_x", "url": None, "failures": 10}]


def test_developers_are_redacted_too_and_admins_see_everything(world: World) -> None:
    _disable_a_webhook(world)
    developer = _events(world, "developer")
    assert world.acme["owner"].email not in str(developer)
    assert HOOK_URL not in str(developer)
    admin = _events(world, "admin")
    assert world.acme["owner"].email in {d["email"] for d in _of(admin, "user.created")}
    assert _of(admin, "webhook.disabled")[0]["url"] == HOOK_URL


def test_email_changes_in_events_are_redacted_for_viewers(world: World) -> None:
    api = world.api
    dev = world.acme["developer"]
    changed = api.patch(
        f"/api/v1/users/{dev.id}", dev.token, json={"email": "renamed@acme.example.com"}
    )
    assert changed.status_code == 200
    updates = _of(_events(world, "viewer"), "user.updated")
    assert updates == [{"user_id": dev.id, "email": None}]
    assert _of(_events(world, "owner"), "user.updated")[0]["email"] == "renamed@acme.example.com"
