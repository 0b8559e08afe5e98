"""Buffers usage in memory and writes it to the ledger in batches.

Every process (control plane workers, gateway replicas) has its own recorder.
A crash loses at most what was buffered since the last flush, i.e. at most
``ATRIUM_USAGE_FLUSH_SECONDS`` of usage; a retried report with the same source id
is stored once, however many processes report it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from control_plane.db import Database
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.usage.repository import UsageRepository

log = logging.getLogger(__name__)
_MAX_BUFFER = 200_000
_BATCH = 1_000


class UsageRecorder:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._buffer: list[dict[str, Any]] = []

    def record(
        self,
        *,
        tenant_id: str,
        metric: str,
        quantity: float,
        unit: str,
        source_id: str,
        dimensions: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        when = occurred_at or utcnow()
        self._buffer.append(
            {
                "id": new_id("use"),
                "tenant_id": tenant_id,
                "metric": metric,
                "quantity": float(quantity),
                "unit": unit,
                "dimensions": dimensions or {},
                "source_id": source_id,
                "occurred_at": when,
                "hour": when.replace(minute=0, second=0, microsecond=0),
                "created_at": utcnow(),
            }
        )
        if len(self._buffer) > _MAX_BUFFER:  # the database is away: keep the newest
            log.error(
                "usage buffer full; dropping %d oldest records", len(self._buffer) - _MAX_BUFFER
            )
            del self._buffer[: len(self._buffer) - _MAX_BUFFER]

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> int:
        """Write what is buffered; on failure keep it all for the next flush (rows already
        written are skipped then by their source ids)."""
        rows, self._buffer = self._buffer, []
        try:
            for start in range(0, len(rows), _BATCH):
                async with self._db.sessionmaker() as session, session.begin():
                    await UsageRepository(session, PLATFORM).append_once(
                        rows[start : start + _BATCH]
                    )
        except Exception:
            log.exception("could not write usage; keeping %d records for the next flush", len(rows))
            self._buffer = rows + self._buffer
            return 0
        return len(rows)
