"""`atrium audit …`: the audit trail."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from control_plane.cli.common import console, load_settings

if TYPE_CHECKING:
    from control_plane.audit.chain import Break, Head

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    heads: bool = typer.Option(
        False, "--heads", help="Print each chain's last row and hash, to keep elsewhere."
    ),
) -> None:
    """Check the audit trail's hash chains; exit 1 naming the first bad row of each broken one.

    A broken chain has a row changed, removed or slipped in. Rows cut off the end of a
    chain are caught only against heads printed earlier.

    Example: atrium audit verify --heads
    """
    from sqlalchemy.exc import SQLAlchemyError

    settings = load_settings()
    try:
        found, broken, warning = asyncio.run(_read(settings.resolved_database_url))
    except SQLAlchemyError as exc:
        console.print(f"[red]cannot read the audit trail: {exc.__class__.__name__}: {exc}[/red]")
        raise typer.Exit(2) from None
    for head in found if heads else ():
        console.print(f"{head.chain}: {head.rows} rows, head {head.hash}", soft_wrap=True)
    if warning:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    for problem in broken:
        console.print(f"[red]{problem}[/red]", soft_wrap=True)
    if broken:
        raise typer.Exit(1)
    rows = sum(head.rows for head in found)
    console.print(f"audit trail intact: {rows} rows in {len(found)} chains")


async def _read(database_url: str) -> tuple[list[Head], list[Break], str | None]:
    from control_plane.audit.chain import ownership_warning, verify
    from control_plane.db import Database

    db = Database(database_url)
    try:
        return (*await verify(db), await ownership_warning(db))
    finally:
        await db.dispose()
