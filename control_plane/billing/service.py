"""Closing a billing period: one immutable invoice per tenant, issued once."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.billing.pricing import Stretch, price
from control_plane.billing.repository import InvoiceRepository, SubscriptionRepository
from control_plane.db import Database
from control_plane.errors import NotFound
from control_plane.event.service import emit
from control_plane.event.types import EventType
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import PLATFORM, Scope
from control_plane.models import Invoice, Subscription, Tenant
from control_plane.plan.catalog import METERED, Catalog
from control_plane.quota.periods import month_bounds
from control_plane.tenant.repository import TenantRepository
from control_plane.usage.repository import UsageRepository

log = logging.getLogger(__name__)


class PeriodOpen(ValueError):
    """The period has not ended yet."""


async def close_period(
    db: Database, catalog: Catalog, period: str, *, now: datetime | None = None
) -> list[Invoice]:
    """Issue the period's invoices for every tenant that has none yet (idempotent)."""
    start, end = month_bounds(period)
    if end > (now or utcnow()):
        raise PeriodOpen(f"{period} has not ended yet")
    async with db.sessionmaker() as session:
        tenants = await TenantRepository(session, PLATFORM).all(Tenant.created_at < end)
    issued = []
    for tenant in tenants:
        try:
            async with db.sessionmaker() as session, session.begin():
                invoice = await _issue(session, catalog, tenant.id, period, start, end)
        except IntegrityError:
            continue  # issued before, by this command or another process
        if invoice is not None:
            issued.append(invoice)
    return issued


async def _issue(
    session: AsyncSession,
    catalog: Catalog,
    tenant_id: str,
    period: str,
    start: datetime,
    end: datetime,
) -> Invoice | None:
    invoices = InvoiceRepository(session, tenant_id)
    if await invoices.first(Invoice.period == period):
        return None
    stretches = await _stretches(session, tenant_id, start, end)
    usage = UsageRepository(session, tenant_id)
    quantities = {
        (meter.metric, s.start, s.end): await usage.total(meter.metric, s.start, s.end)
        for s in stretches
        for meter in METERED.values()
    }
    lines = price(catalog, stretches, quantities, period_start=start, period_end=end)
    invoice = invoices.add(
        Invoice(
            id=new_id("inv"),
            tenant_id=tenant_id,
            period=period,
            period_start=start,
            period_end=end,
            currency=catalog.currency,
            lines=lines,
            total_cents=sum(line["amount_cents"] for line in lines),
            issued_at=utcnow(),
        )
    )
    emit(
        session,
        tenant_id=tenant_id,
        type=EventType.INVOICE_ISSUED,
        data={"invoice_id": invoice.id, "period": period, "total_cents": invoice.total_cents},
    )
    return invoice


async def _stretches(
    session: AsyncSession, tenant_id: str, start: datetime, end: datetime
) -> list[Stretch]:
    subs = await SubscriptionRepository(session, tenant_id).all(
        Subscription.started_at < end,
        (Subscription.ended_at.is_(None)) | (Subscription.ended_at > start),
    )
    ordered = sorted(subs, key=lambda s: s.started_at)
    return [
        Stretch(s.plan, max(s.started_at, start), min(s.ended_at or end, end))
        for s in ordered
        if min(s.ended_at or end, end) > max(s.started_at, start)
    ]


async def list_page(
    session: AsyncSession, scope: Scope, params: PageParams
) -> tuple[Sequence[Invoice], str | None]:
    return await InvoiceRepository(session, scope).page(params, newest_first=True)


async def get(session: AsyncSession, scope: Scope, invoice_id: str) -> Invoice:
    invoice = await InvoiceRepository(session, scope).get(invoice_id)
    if invoice is None:
        raise NotFound("invoice not found")
    return invoice


CSV_COLUMNS = (
    "kind",
    "description",
    "plan",
    "from",
    "to",
    "quantity",
    "unit",
    "unit_price_cents",
    "amount_cents",
)


def as_csv(invoice: Invoice) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in invoice.lines:
        writer.writerow([line.get(c, "") for c in CSV_COLUMNS])
    writer.writerow(["total", "", "", "", "", "", invoice.currency, "", invoice.total_cents])
    return out.getvalue()
