from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func

from control_plane.kit.repository import RepositoryBase
from control_plane.models import UsageRecord


class UsageRepository(RepositoryBase[UsageRecord]):
    model = UsageRecord

    async def append_once(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows, skipping any whose (tenant, metric, source id) is already there."""
        await self.insert_new(rows, unique=["tenant_id", "metric", "source_id"])

    async def total(self, metric: str, start: datetime, end: datetime) -> float:
        stmt = self.select(
            UsageRecord.metric == metric,
            UsageRecord.occurred_at >= start,
            UsageRecord.occurred_at < end,
        ).with_only_columns(func.coalesce(func.sum(UsageRecord.quantity), 0.0))
        return float(await self.session.scalar(stmt) or 0.0)

    async def hourly(
        self, start: datetime, end: datetime, metric: str | None
    ) -> list[tuple[str, str, datetime, float]]:
        """(metric, unit, hour, quantity) sums in [start, end)."""
        where = [UsageRecord.hour >= start, UsageRecord.hour < end]
        if metric:
            where.append(UsageRecord.metric == metric)
        stmt = (
            self.select(*where)
            .with_only_columns(
                UsageRecord.metric,
                UsageRecord.unit,
                UsageRecord.hour,
                func.sum(UsageRecord.quantity),
            )
            .group_by(UsageRecord.metric, UsageRecord.unit, UsageRecord.hour)
            .order_by(UsageRecord.hour)
        )
        rows = (await self.session.execute(stmt)).all()
        return [(r[0], r[1], r[2], float(r[3])) for r in rows]
