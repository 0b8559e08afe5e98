"""Shared set-up for benchmarks: a migrated database with one tenant, a Redis URL."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from control_plane.db import Database
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.migrate import upgrade
from control_plane.models import Tenant
from control_plane.tenant.repository import TenantRepository

REDIS_URL = os.environ.get("ATRIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def sqlite_url() -> str:
    directory = Path(tempfile.mkdtemp(prefix="atrium-bench-"))
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    upgrade(url)
    return url


async def with_tenant(db: Database, plan: str = "enterprise") -> str:
    async with db.sessionmaker() as session, session.begin():
        TenantRepository(session, PLATFORM).add(
            Tenant(id="ten_bench", name="Bench", slug="bench", plan=plan, created_at=utcnow())
        )
    return "ten_bench"
