"""The `atrium` command: one module per command group."""

from __future__ import annotations

import typer

from control_plane.cli import (
    admin,
    audit,
    billing,
    db,
    keys,
    registry,
    samples,
    server,
    webhooks,
)

app = typer.Typer(help="Atrium: a multi-tenant ML platform on Ray.", no_args_is_help=True)
app.command()(server.up)
app.command()(server.api)
app.command()(samples.samples)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(keys.app, name="keys")
app.add_typer(billing.app, name="billing")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(audit.app, name="audit")
app.add_typer(registry.models_app, name="models")
app.add_typer(registry.datasets_app, name="datasets")

__all__ = ["app"]
