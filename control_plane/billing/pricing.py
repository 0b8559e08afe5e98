"""Turning a period's subscriptions and usage into invoice lines (pure arithmetic).

Each stretch of the period spent on one plan is billed on its own: the plan's base
price and its included amounts pro-rated by the stretch's share of the month, and
usage within the stretch beyond those included amounts at the plan's overage price.
Amounts are Decimal cents, rounded half-up per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from control_plane.plan.catalog import METERED, Catalog, Limit


@dataclass(frozen=True)
class Stretch:
    plan: str
    start: datetime
    end: datetime


def _cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _day(when: datetime) -> str:
    return when.date().isoformat()


def price(
    catalog: Catalog,
    stretches: list[Stretch],
    usage: dict[tuple[str, datetime, datetime], float],
    *,
    period_start: datetime,
    period_end: datetime,
) -> list[dict[str, Any]]:
    """Invoice lines; ``usage`` maps (metric, start, end) of each stretch to its quantity."""
    month = Decimal(int((period_end - period_start).total_seconds()))
    lines: list[dict[str, Any]] = []
    for stretch in stretches:
        plan = catalog.plans[stretch.plan]
        share = Decimal(int((stretch.end - stretch.start).total_seconds())) / month
        span = {"plan": plan.name, "from": _day(stretch.start), "to": _day(stretch.end)}
        lines.append(
            {
                "kind": "base",
                "description": f"{plan.title} plan, {span['from']} to {span['to']}",
                "quantity": str(share.quantize(Decimal("0.000001"))),
                "unit": "month",
                "unit_price_cents": plan.price_cents,
                "amount_cents": _cents(plan.price_cents * share),
                **span,
            }
        )
        for limit, overage in plan.overage.items():
            meter = METERED[limit]
            used = Decimal(str(usage.get((meter.metric, stretch.start, stretch.end), 0.0)))
            included = Decimal(str(plan.included.get(limit, 0))) * meter.per_limit_unit * share
            over = max(Decimal(0), used - included) / meter.per_limit_unit
            if over <= 0:
                continue
            lines.append(_overage_line(limit, over, overage.cents, overage.per, span))
    return lines


def _overage_line(
    limit: Limit, over: Decimal, cents: Decimal, per: Decimal, span: dict[str, str]
) -> dict[str, Any]:
    unit = limit.value.removeprefix("monthly_")
    return {
        "kind": "overage",
        "description": f"{unit.replace('_', ' ')} over the included amount ({span['plan']})",
        "quantity": str(over.quantize(Decimal("0.0001"))),
        "unit": unit,
        "unit_price_cents": f"{cents} per {per}",
        "amount_cents": _cents(over / per * cents),
        "metric": METERED[limit].metric,
        **span,
    }
