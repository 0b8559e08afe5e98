"""Outbox → Redis Stream relay throughput, against raw XADD in the same run.

N events are committed to the outbox first (not timed). Then:
  baseline  raw XADD of the same N payloads, pipelined in batches of 2000
  relay     Dispatcher.stream() until the outbox is drained: select a batch of
            un-streamed events, XADD them in one pipeline, mark them streamed
Database: SQLite in a temp dir, or ATRIUM_BENCH_DATABASE_URL (a database of its own, e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/atrium_bench; it gets migrated).
Target (issue 3): at least 10,000 events/s through the relay on this machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

from sqlalchemy import insert

from bench.common import REDIS_URL, sqlite_url
from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.event.repository import EventRepository
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.redis import connect
from control_plane.kit.repository import PLATFORM
from control_plane.migrate import upgrade
from control_plane.models import OutboxPending
from control_plane.webhook.dispatcher import Dispatcher

N = 20_000


def _database_url() -> str:
    url = os.environ.get("ATRIUM_BENCH_DATABASE_URL")
    if url:
        upgrade(url)
        return url
    return sqlite_url()


def _rows() -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "id": new_id("evt"),
            "tenant_id": f"ten_{i % 4}",
            "type": "quota.threshold",
            "data": {"quota": "monthly_predictions", "percent": 80, "n": i},
            "created_at": now,
        }
        for i in range(N)
    ]


async def _fill(db: Database, rows: list[dict[str, Any]]) -> None:
    """Commit the events and their relay work, as ``emit`` would have."""
    async with db.sessionmaker() as session, session.begin():
        for start in range(0, len(rows), 2000):
            chunk = rows[start : start + 2000]
            await EventRepository(session, PLATFORM).insert_new(chunk, unique=["id"])
            pending = [
                {"duty": d, "event_id": r["id"]} for r in chunk for d in ("fanout", "stream")
            ]
            await session.execute(insert(OutboxPending), pending)


async def run() -> tuple[float, float, str]:
    url = _database_url()
    db = Database(url)
    ns = f"bench{uuid.uuid4().hex[:8]}"
    redis = connect(REDIS_URL)
    settings = Settings(_env_file=None, redis_namespace=ns)
    dispatcher = Dispatcher(db=db, settings=settings, secrets=SecretBox("x" * 40), redis=redis)
    rows = _rows()
    try:
        started = time.perf_counter()
        for start in range(0, N, 2000):
            async with redis.pipeline(transaction=False) as pipe:
                for row in rows[start : start + 2000]:
                    body = json.dumps({"id": row["id"], "type": row["type"], "data": row["data"]})
                    pipe.xadd(
                        f"{ns}:raw:{row['tenant_id']}",
                        {"id": row["id"], "type": row["type"], "body": body},
                    )
                await pipe.execute()
        raw = N / (time.perf_counter() - started)

        await _fill(db, rows)
        started = time.perf_counter()
        relayed = 0
        while (done := await dispatcher.stream()) > 0:
            relayed += done
        relay = relayed / (time.perf_counter() - started)
        assert relayed == N, relayed
        streamed = sum([await redis.xlen(f"{ns}:events:ten_{i}") for i in range(4)])
        assert streamed == N, streamed
    finally:
        await redis.delete(*[k async for k in redis.scan_iter(f"{ns}:*")] or ["_"])
        await dispatcher.close()
        await redis.aclose()
        await db.dispose()
    return raw, relay, url.split(":")[0]


def main() -> None:
    raw, relay, database = asyncio.run(run())
    print(f"{N} events, database {database}, Redis {REDIS_URL}")
    print(f"  raw XADD, pipelined              {raw:10.0f} events/s")
    print(f"  outbox -> Redis Stream relay     {relay:10.0f} events/s")
    print(
        f"ratio relay / raw XADD: {relay / raw:.2f}   relay rate: {relay:.0f}/s (target >= 10000/s)"
    )


if __name__ == "__main__":
    main()
