"""`atrium billing …`: invoices."""

from __future__ import annotations

import asyncio

import typer

from control_plane.cli.common import console, load_settings, prepare
from control_plane.config import Settings

app = typer.Typer(help="Invoices.", no_args_is_help=True)


@app.command("close-period")
def close_period(
    period: str | None = typer.Option(None, help="YYYY-MM; default: the month that just ended."),
) -> None:
    """Issue the invoices of a finished month (safe to run again: issues each once).

    Example: atrium billing close-period --period 2025-01
    """
    from datetime import timedelta

    from control_plane.billing.service import PeriodOpen
    from control_plane.kit.clock import utcnow
    from control_plane.quota.periods import month_label, month_start

    settings = load_settings()
    prepare(settings)
    label = period or month_label(month_start(utcnow()) - timedelta(days=1))
    try:
        issued = asyncio.run(_close(settings, label))
    except (PeriodOpen, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{label}: issued {issued} invoice(s)")


async def _close(settings: Settings, label: str) -> int:
    from control_plane.billing.service import close_period
    from control_plane.db import Database
    from control_plane.plan.catalog import load_catalog

    db = Database(settings.resolved_database_url)
    try:
        return len(await close_period(db, load_catalog(settings.plans_file), label))
    finally:
        await db.dispose()
