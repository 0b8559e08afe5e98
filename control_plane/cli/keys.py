"""`atrium keys …`: access-token signing keys and the master key of tenants' data keys."""

from __future__ import annotations

import asyncio

import typer

from control_plane.cli.common import console, load_settings, prepare

app = typer.Typer(help="Access-token signing keys.", no_args_is_help=True)


@app.command("rotate")
def rotate() -> None:
    """Sign new access tokens with a new key; the old key verifies until its tokens expire.

    Example: atrium keys rotate
    """
    from control_plane.auth.keyring import KeyRing

    settings = load_settings()
    if settings.jwt_private_key is not None:
        console.print("[red]ATRIUM_JWT_PRIVATE_KEY is set: rotate by changing that setting[/red]")
        raise typer.Exit(2)
    ring = KeyRing(settings.home_dir / "keys")
    grace = settings.access_token_ttl_seconds + settings.jwt_leeway_seconds
    key = ring.rotate(retire_after_s=grace)
    console.print(f"new signing key {key.kid}; previous keys verify for {grace}s more")


@app.command("rotate-master")
def rotate_master(
    new_key: str | None = typer.Option(
        None, help="Base64 of 32 bytes; required when ATRIUM_MASTER_KEY is set, else generated."
    ),
) -> None:
    """Re-wrap every tenant's data key under a new master key (blobs are not rewritten).

    Restart the servers afterwards so they wrap new tenants' keys with it.

    Example: atrium keys rotate-master
    """
    from control_plane.artifact.keys import master_key_text, new_master_key, store_master_key

    settings = load_settings()
    prepare(settings)
    if settings.master_key is not None and new_key is None:
        console.print(
            "[red]ATRIUM_MASTER_KEY is set: pass --new-key, then update the setting[/red]"
        )
        raise typer.Exit(2)
    old, new = master_key_text(settings), new_key or new_master_key()
    try:
        count = asyncio.run(_rewrap(settings.resolved_database_url, old, new))
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if settings.master_key is None:
        store_master_key(settings, new)
        console.print(f"re-wrapped {count} data key(s); the new master key is in ATRIUM_HOME")
    else:
        console.print(f"re-wrapped {count} data key(s); now set ATRIUM_MASTER_KEY to the new key")


async def _rewrap(database_url: str, old: str, new: str) -> int:
    from control_plane.artifact.keys import rewrap_all
    from control_plane.db import Database

    db = Database(database_url)
    try:
        return await rewrap_all(db, old, new)
    finally:
        await db.dispose()
