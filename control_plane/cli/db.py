"""`atrium db …`: the database schema."""

from __future__ import annotations

import typer

from control_plane.cli.common import console, load_settings, prepare

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply all pending migrations.

    Example: atrium db upgrade
    """
    prepare(load_settings())
    console.print("database is at the latest migration")
