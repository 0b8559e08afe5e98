"""Calendar months in UTC: the period of monthly quotas and invoices."""

from __future__ import annotations

from datetime import UTC, datetime


def month_start(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """'2026-03' → [2026-03-01, 2026-04-01) in UTC."""
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"period must look like 2026-03, not {period!r}") from None
    return start, next_month(start)


def month_label(when: datetime) -> str:
    return month_start(when).strftime("%Y-%m")
