from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, SessionDep, member
from control_plane.errors import ValidationFailed, responses
from control_plane.kit.clock import utcnow
from control_plane.quota.periods import month_start
from control_plane.usage.repository import UsageRepository

router = APIRouter(
    prefix="/api/v1/usage",
    tags=["usage"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
Granularity = Literal["hour", "day", "month"]
_MAX_SPAN = timedelta(days=400)


class UsagePoint(BaseModel):
    metric: str
    unit: str
    period_start: datetime
    quantity: float


class UsageReport(BaseModel):
    granularity: Granularity
    start: datetime
    end: datetime
    items: list[UsagePoint]


def _bucket(hour: datetime, granularity: Granularity) -> datetime:
    if granularity == "hour":
        return hour
    if granularity == "day":
        return hour.replace(hour=0)
    return month_start(hour)


@router.get("", response_model=UsageReport)
async def report(
    session: SessionDep,
    me: Annotated[Principal, Depends(Authorize(Action.USAGE_READ, "tenant_member"))],
    from_: Annotated[
        AwareDatetime | None, Query(alias="from", description="Default: month start.")
    ] = None,
    to: Annotated[AwareDatetime | None, Query(description="Default: now.")] = None,
    granularity: Granularity = "day",
    metric: Annotated[str | None, Query(max_length=60, description="e.g. `predictions`")] = None,
) -> UsageReport:
    """Metered usage of the caller's tenant, summed per metric and hour, day or month."""
    tenant_id = member(me)
    end = to or utcnow()
    start = from_ or month_start(end)
    if not start < end or end - start > _MAX_SPAN:
        raise ValidationFailed(
            "`from` must be before `to`, at most 400 days apart", extra={"field": "from"}
        )
    hourly = await UsageRepository(session, tenant_id).hourly(
        start.replace(minute=0, second=0, microsecond=0), end, metric
    )
    sums: dict[tuple[str, str, datetime], float] = defaultdict(float)
    for name, unit, hour, quantity in hourly:
        sums[(name, unit, _bucket(hour, granularity))] += quantity
    items = [
        UsagePoint(metric=m, unit=u, period_start=p, quantity=q) for (m, u, p), q in sums.items()
    ]
    items.sort(key=lambda i: (i.period_start, i.metric))
    return UsageReport(granularity=granularity, start=start, end=end, items=items)
