from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from control_plane.db import Database
from control_plane.models import UsageRecord
from control_plane.usage.recorder import UsageRecorder
from tests.api.world import World, run_async

T = datetime(2026, 5, 1, tzinfo=UTC)


def _record(
    recorder: UsageRecorder, tenant: str, quantity: float, when: datetime, source: str
) -> None:
    recorder.record(
        tenant_id=tenant,
        metric="predictions",
        quantity=quantity,
        unit="predictions",
        source_id=source,
        occurred_at=when,
        dimensions={"deployment": "iris"},
    )


def test_usage_is_summed_by_hour_day_and_month(world: World) -> None:
    api = world.api
    recorder = api.services.usage
    for source, (quantity, when) in enumerate(
        [
            (10, T.replace(day=3, hour=9, minute=5)),
            (5, T.replace(day=3, hour=9, minute=55)),
            (7, T.replace(day=3, hour=15)),
            (1, T.replace(day=20)),
            (100, T.replace(month=6, day=2)),
        ]
    ):
        _record(recorder, world.acme.id, quantity, when, f"s{source}")
    _record(recorder, world.globex.id, 999, T.replace(day=3), "other-tenant")
    run_async(api, recorder.flush)
    token = world.acme["owner"].token

    def report(granularity: str, **params: str) -> list[tuple[str, float]]:
        body = api.get(
            "/api/v1/usage",
            token,
            params={
                "from": T.isoformat(),
                "to": T.replace(month=7).isoformat(),
                "granularity": granularity,
                **params,
            },
        ).json()
        return [(i["period_start"][:13], i["quantity"]) for i in body["items"]]

    assert report("hour") == [
        ("2026-05-03T09", 15.0),
        ("2026-05-03T15", 7.0),
        ("2026-05-20T00", 1.0),
        ("2026-06-02T00", 100.0),
    ]
    assert report("day") == [
        ("2026-05-03T00", 22.0),
        ("2026-05-20T00", 1.0),
        ("2026-06-02T00", 100.0),
    ]
    assert report("month") == [("2026-05-01T00", 23.0), ("2026-06-01T00", 100.0)]
    assert report("month", metric="cpu_seconds") == []


def test_bad_usage_queries_are_422(world: World) -> None:
    api, token = world.api, world.acme["owner"].token
    backwards = {"from": T.isoformat(), "to": T.replace(day=1, month=4).isoformat()}
    assert api.get("/api/v1/usage", token, params=backwards).status_code == 422
    assert api.get("/api/v1/usage", token, params={"granularity": "week"}).status_code == 422
    assert api.get("/api/v1/usage", token, params={"from": "yesterday"}).status_code == 422
    assert api.get("/api/v1/usage", world.acme["developer"].token).status_code == 200


def test_reports_from_several_writers_are_counted_once(world: World) -> None:
    """Two processes' recorders flush the same retried reports at the same moment."""
    api = world.api
    url = api.services.db.url

    async def run() -> int:
        databases = [Database(url), Database(url)]
        recorders = [UsageRecorder(db) for db in databases]
        for recorder in recorders:
            for n in range(300):
                _record(recorder, world.acme.id, 1, T, f"req-{n}")
        await asyncio.gather(*(r.flush() for r in recorders))
        await recorders[0].flush()  # nothing left
        async with databases[0].sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(UsageRecord)
                .where(UsageRecord.tenant_id == world.acme.id)
            )
        for db in databases:
            await db.dispose()
        return int(count or 0)

    assert run_async(api, run) == 300


def test_hot_usage_is_summed_into_one_row_per_flush(world: World) -> None:
    """The gateway adds a prediction per request; the ledger gets sums, and a flush
    that failed and is retried stores them once."""
    api = world.api

    async def run() -> list[tuple[float, str]]:
        db = Database(api.services.db.url)
        recorder = UsageRecorder(db)
        for _ in range(500):
            recorder.add(
                tenant_id=world.acme.id,
                metric="predictions",
                quantity=2,
                unit="predictions",
                dimensions={"deployment": "churn"},
            )
        recorder.add(tenant_id=world.acme.id, metric="predictions", quantity=1, unit="predictions")
        await recorder.flush()
        recorder.add(tenant_id=world.acme.id, metric="predictions", quantity=5, unit="predictions")
        recorder._drain_sums()  # as a flush that then failed would have left them
        pending = list(recorder._buffer)
        await recorder.flush()
        recorder._buffer = pending  # the retry of that flush: stored once
        await recorder.flush()
        async with db.sessionmaker() as session:
            rows = await session.execute(
                select(UsageRecord.quantity, UsageRecord.source_id).where(
                    UsageRecord.tenant_id == world.acme.id
                )
            )
            found = sorted((float(q), s) for q, s in rows.all())
        await db.dispose()
        return found

    rows = run_async(api, run)
    assert [q for q, _ in rows] == [1.0, 5.0, 1000.0]
    assert all(source.startswith("sum:") for _, source in rows)
