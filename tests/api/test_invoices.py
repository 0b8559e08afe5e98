"""Invoices: golden figures for a month with a plan change in the middle."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.api.world import Api, World, backdate_tenant, close_period, run_async

MARCH = "2026-03"
SWITCH = datetime(2026, 3, 11, tzinfo=UTC)  # 10 days on free, 21 on pro


def _set_history(api: Api, tenant_id: str) -> None:
    """Free since February; pro from 11 March (the change made through the API, then dated)."""

    async def run() -> None:
        async with api.services.db.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE subscriptions SET ended_at = :at WHERE tenant_id = :t AND plan = 'free'"
                ),
                {"at": SWITCH, "t": tenant_id},
            )
            await conn.execute(
                text(
                    "UPDATE subscriptions SET started_at = :at "
                    "WHERE tenant_id = :t AND plan = 'pro'"
                ),
                {"at": SWITCH, "t": tenant_id},
            )

    run_async(api, run)


def _use(
    api: Api, tenant_id: str, metric: str, quantity: float, when: datetime, source: str
) -> None:
    api.services.usage.record(
        tenant_id=tenant_id,
        metric=metric,
        quantity=quantity,
        unit="x",
        source_id=source,
        occurred_at=when,
    )


@pytest.fixture
def march(world: World) -> World:
    api = world.api
    backdate_tenant(api, world.acme.id, datetime(2026, 2, 15, tzinfo=UTC))
    backdate_tenant(api, world.globex.id, datetime(2026, 4, 2, tzinfo=UTC))  # after March
    path = f"/api/v1/tenants/{world.acme.id}/plan"
    assert api.call("PUT", path, world.admin_token, json={"plan": "pro"}).status_code == 200
    _set_history(api, world.acme.id)
    _use(api, world.acme.id, "predictions", 20_000, datetime(2026, 3, 5, tzinfo=UTC), "a")
    _use(api, world.acme.id, "predictions", 900_000, datetime(2026, 3, 20, tzinfo=UTC), "b")
    _use(api, world.acme.id, "cpu_seconds", 360_000, datetime(2026, 3, 25, tzinfo=UTC), "c")
    _use(api, world.acme.id, "predictions", 5_000_000, datetime(2026, 4, 1, tzinfo=UTC), "april")
    run_async(api, api.services.usage.flush)
    return world


def test_golden_invoice_for_a_month_with_a_plan_change(march: World) -> None:
    api = march.api
    issued = close_period(api, MARCH)
    assert len(issued) == 1  # globex did not exist in March
    invoice = api.get("/api/v1/invoices", march.acme["owner"].token).json()["items"][0]
    assert (invoice["period"], invoice["currency"]) == (MARCH, "usd")
    lines = [
        (line["kind"], line["plan"], line.get("metric"), line["quantity"], line["amount_cents"])
        for line in invoice["lines"]
    ]
    assert lines == [
        ("base", "free", None, "0.322581", 0),
        ("base", "pro", None, "0.677419", 33803),  # 49900 x 21/31
        ("overage", "pro", "predictions", "222580.6452", 11129),  # over 1M x 21/31, 50c/1000
        ("overage", "pro", "cpu_seconds", "32.2581", 258),  # over 100 h x 21/31, 8c/h
    ]
    assert invoice["total_cents"] == 45190
    assert invoice["lines"][0]["from"] == "2026-03-01" and invoice["lines"][0]["to"] == "2026-03-11"


def test_closing_again_issues_nothing_and_invoices_are_immutable(march: World) -> None:
    api = march.api
    first = close_period(api, MARCH)
    assert close_period(api, MARCH) == []
    invoice_id = first[0].id

    async def tamper() -> None:
        async with api.services.db.engine.begin() as conn:
            await conn.execute(text("UPDATE invoices SET total_cents = 1"))

    with pytest.raises(DBAPIError, match="immutable"):
        run_async(api, tamper)
    got = api.get(f"/api/v1/invoices/{invoice_id}", march.acme["owner"].token).json()
    assert got["total_cents"] == 45190


def test_invoice_downloads_as_csv_and_is_announced(march: World) -> None:
    api = march.api
    invoice_id = close_period(api, MARCH)[0].id
    response = api.get(
        f"/api/v1/invoices/{invoice_id}", march.acme["admin"].token, params={"format": "csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["amount_cents"] for r in rows] == ["0", "33803", "11129", "258", "45190"]
    events = api.get("/api/v1/events", march.acme["owner"].token, params={"limit": 200}).json()
    issued = [e for e in events["items"] if e["type"] == "invoice.issued"]
    assert issued[0]["data"] == {"invoice_id": invoice_id, "period": MARCH, "total_cents": 45190}


def test_invoices_are_for_owners_and_admins_of_the_tenant(march: World) -> None:
    api = march.api
    invoice_id = close_period(api, MARCH)[0].id
    assert api.get("/api/v1/invoices", march.acme["developer"].token).status_code == 403
    assert api.get(f"/api/v1/invoices/{invoice_id}", march.globex["owner"].token).status_code == 404
    assert api.get("/api/v1/invoices", march.globex["owner"].token).json()["items"] == []
    everyone = api.get("/api/v1/invoices", march.admin_token).json()["items"]
    assert [i["id"] for i in everyone] == [invoice_id]


def test_an_open_period_cannot_be_closed(api: Api) -> None:
    from control_plane.billing.service import PeriodOpen

    this_month = datetime.now(UTC).strftime("%Y-%m")
    with pytest.raises(PeriodOpen):
        close_period(api, this_month)
