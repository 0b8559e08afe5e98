"""A small populated platform that API tests act on, and a thin client around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
from fastapi.testclient import TestClient
from sqlalchemy import text

from control_plane.config import Settings
from tests.support import ADMIN_EMAIL, PASSWORD


class Api:
    """TestClient plus the few calls almost every test makes."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @property
    def services(self) -> Any:
        return self.client.app.state.services  # type: ignore[attr-defined]

    def login(self, email: str, password: str = PASSWORD, **form: str) -> httpx.Response:
        data = {"username": email, "password": password, **form}
        return self.client.post("/api/v1/auth/token", data=data)

    def token(self, email: str, password: str = PASSWORD, **form: str) -> str:
        response = self.login(email, password, **form)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.call("POST", path, token, **kwargs)

    def patch(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.call("PATCH", path, token, **kwargs)

    def delete(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.call("DELETE", path, token, **kwargs)

    def created(self, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(path, token, json=body)
        assert response.status_code == 201, response.text
        obj: dict[str, Any] = response.json()
        return obj

    def new_key(self, token: str, scopes: list[str], **body: Any) -> dict[str, Any]:
        return self.created("/api/v1/api-keys", token, {"name": "k", "scopes": scopes, **body})


@dataclass
class Member:
    id: str
    email: str
    token: str


@dataclass
class TenantInfo:
    id: str
    slug: str
    members: dict[str, Member] = field(default_factory=dict)

    def __getitem__(self, role: str) -> Member:
        return self.members[role]


@dataclass
class World:
    api: Api
    admin_token: str
    acme: TenantInfo
    globex: TenantInfo


def add_tenant(api: Api, admin_token: str, slug: str, roles: list[str]) -> TenantInfo:
    tenant = api.created("/api/v1/tenants", admin_token, {"name": slug.title(), "slug": slug})
    # tests call faster than the free plan's API rate; rate limiting has tests of its own
    unlimited = api.call(
        "PUT",
        f"/api/v1/tenants/{tenant['id']}/limits",
        admin_token,
        json={"limits": {"api_rps": None}},
    )
    assert unlimited.status_code == 200, unlimited.text
    info = TenantInfo(tenant["id"], slug)
    for role in roles:
        email = f"{role}@{slug}.example.com"
        user = api.created(
            "/api/v1/users",
            admin_token,
            {"email": email, "password": PASSWORD, "role": role, "tenant_id": tenant["id"]},
        )
        info.members[role] = Member(user["id"], email, api.token(email))
    return info


def build_world(api: Api) -> World:
    admin = api.token(ADMIN_EMAIL)
    acme = add_tenant(api, admin, "acme", ["owner", "admin", "developer", "viewer"])
    globex = add_tenant(api, admin, "globex", ["owner"])
    return World(api, admin, acme, globex)


def run_async(api: Api, fn: Any, *args: Any) -> Any:
    """Run a coroutine function on the app's own event loop (its engine lives there)."""
    portal = api.client.portal
    assert portal is not None
    return portal.call(fn, *args)


def backdate_tenant(api: Api, tenant_id: str, since: datetime) -> None:
    """Pretend a tenant (and its first plan) started at ``since``."""

    statements = (
        "UPDATE tenants SET created_at = :since WHERE id = :tid",
        "UPDATE subscriptions SET started_at = :since WHERE tenant_id = :tid",
    )

    async def update() -> None:
        async with api.services.db.engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement), {"since": since, "tid": tenant_id})

    run_async(api, update)


def close_period(api: Api, period: str) -> list[Any]:
    from control_plane.billing.service import close_period as close

    async def run() -> list[Any]:
        return await close(api.services.db, api.services.catalog, period)

    result: list[Any] = run_async(api, run)
    return result


def last_month() -> tuple[str, datetime]:
    from control_plane.quota.periods import month_label, month_start

    start = month_start(month_start(datetime.now(UTC)) - timedelta(days=1))
    return month_label(start), start


def close_a_period_with_an_invoice(world: World) -> str:
    """Give acme a month on its plan that has ended, invoice it, return the invoice id."""
    period, start = last_month()
    backdate_tenant(world.api, world.acme.id, start)
    close_period(world.api, period)
    invoices = world.api.get("/api/v1/invoices", world.acme["owner"].token).json()["items"]
    invoice_id: str = invoices[0]["id"]
    return invoice_id
