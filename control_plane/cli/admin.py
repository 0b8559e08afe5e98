"""`atrium admin …`: platform administrators."""

from __future__ import annotations

import asyncio

import typer

from control_plane.cli.common import console, load_settings, prepare
from control_plane.config import Settings

app = typer.Typer(help="Platform administrators.", no_args_is_help=True)


@app.command("create")
def create(
    email: str = typer.Option(..., help="Email of the platform admin."),
    password: str = typer.Option(..., help="At least 12 characters.", prompt=True, hide_input=True),
) -> None:
    """Create a platform admin (does nothing if the email exists).

    Example: atrium admin create --email ops@example.com
    """
    settings = load_settings()
    prepare(settings)
    try:
        created = asyncio.run(_create(settings, email, password))
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print("platform admin created" if created else "platform admin already exists")


async def _create(settings: Settings, email: str, password: str) -> bool:
    """Only a database and a password hasher: no keys written, no clients started."""
    from control_plane.auth.passwords import Passwords
    from control_plane.bootstrap import ensure_platform_admin
    from control_plane.db import Database

    db = Database(settings.resolved_database_url)
    try:
        return await ensure_platform_admin(
            db=db,
            passwords=Passwords(settings),
            email=email,
            password=password,
            min_length=settings.password_min_length,
        )
    finally:
        await db.dispose()
