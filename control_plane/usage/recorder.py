"""Buffers usage in memory and writes it to the ledger in batches.

Every process (control plane workers, gateway replicas) has its own recorder.
A crash loses at most what was buffered since the last flush, i.e. at most
``ATRIUM_USAGE_FLUSH_SECONDS`` of usage; a retried report with the same source id
is stored once, however many processes report it.
"""

from __future__ import annotations

import json
import logging
import uuid
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
        # hot paths (a prediction per request) sum here and become one row per flush
        self._sums: dict[tuple[str, str, str, str, datetime], float] = {}
        self._origin = uuid.uuid4().hex[:12]
        self._flushes = 0

    def add(
        self,
        *,
        tenant_id: str,
        metric: str,
        quantity: float,
        unit: str,
        dimensions: dict[str, Any] | None = None,
    ) -> None:
        """Usage too frequent for a row each (predictions): summed per tenant, metric,
        dimensions and hour, written as one row per flush."""
        hour = utcnow().replace(minute=0, second=0, microsecond=0)
        key = (tenant_id, metric, unit, json.dumps(dimensions or {}, sort_keys=True), hour)
        self._sums[key] = self._sums.get(key, 0.0) + quantity

    def _drain_sums(self) -> None:
        """Turn the sums into rows with source ids of their own, before any write: a retry
        after a failed flush writes the same rows again, stored once."""
        sums, self._sums = self._sums, {}
        self._flushes += 1
        for n, ((tenant_id, metric, unit, dims, hour), quantity) in enumerate(sums.items()):
            self.record(
                tenant_id=tenant_id,
                metric=metric,
                quantity=quantity,
                unit=unit,
                source_id=f"sum:{self._origin}:{self._flushes}:{n}",
                dimensions=json.loads(dims),
                occurred_at=hour,
            )

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
        return len(self._buffer) + len(self._sums)

    async def flush(self) -> int:
        """Write what is buffered; on failure keep it all for the next flush (rows already
        written are skipped then by their source ids)."""
        if self._sums:
            self._drain_sums()
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
