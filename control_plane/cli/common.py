"""What every `atrium` command shares: the error console, settings, a prepared home."""

from __future__ import annotations

import typer
from rich.console import Console

from control_plane.config import Settings
from control_plane.kit.secret_files import ensure_private_dir
from control_plane.migrate import upgrade

console = Console(stderr=True)


def load_settings() -> Settings:
    """Settings and the plan catalogue, or exit 2 with a message naming what is wrong."""
    from control_plane.plan.catalog import CatalogError, load_catalog

    try:
        settings = Settings()
        load_catalog(settings.plans_file)
    except CatalogError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except ValueError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None
    return settings


def prepare(settings: Settings) -> None:
    """The home directory exists (owner-only) and the schema is current."""
    ensure_private_dir(settings.home_dir)
    upgrade(settings.resolved_database_url)
