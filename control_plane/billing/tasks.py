"""Billing's scheduled work: closing each month once it has ended."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from control_plane.billing.service import close_period
from control_plane.db import Database
from control_plane.kit.clock import utcnow
from control_plane.plan.catalog import Catalog
from control_plane.quota.periods import month_label, month_start

log = logging.getLogger(__name__)


async def close_periods_forever(db: Database, catalog: Catalog, *, every_s: float) -> None:
    """Issue last month's invoices once it has ended (idempotent, any process)."""
    while True:
        try:
            period = month_label(month_start(utcnow()) - timedelta(days=1))
            issued = await close_period(db, catalog, period)
            if issued:
                log.info("issued %d invoices for %s", len(issued), period)
        except Exception:
            log.exception("closing the billing period failed; will retry")
        await asyncio.sleep(every_s)
