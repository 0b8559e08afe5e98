"""The `atrium` command."""

from __future__ import annotations

import asyncio

import typer
import uvicorn
from rich.console import Console

from control_plane.cli_registry import datasets_app, models_app
from control_plane.config import Settings
from control_plane.kit.secret_files import ensure_private_dir
from control_plane.migrate import upgrade

app = typer.Typer(help="Atrium: a multi-tenant ML platform on Ray.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Platform administrators.", no_args_is_help=True)
keys_app = typer.Typer(help="Access-token signing keys.", no_args_is_help=True)
billing_app = typer.Typer(help="Invoices.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook tools.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(keys_app, name="keys")
app.add_typer(billing_app, name="billing")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(audit_app, name="audit")
app.add_typer(models_app, name="models")
app.add_typer(datasets_app, name="datasets")
console = Console(stderr=True)


def _settings() -> Settings:
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


def _prepare(settings: Settings) -> None:
    """The home directory exists (owner-only) and the schema is current."""
    ensure_private_dir(settings.home_dir)
    upgrade(settings.resolved_database_url)


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from control_plane.app import create_app
    from control_plane.observability import configure_logging

    _prepare(settings)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        log_config=None,
        access_log=False,
        # X-Forwarded-For is believed only from ATRIUM_TRUSTED_PROXIES (kit.forwarded),
        # not from uvicorn's default of any local process
        proxy_headers=False,
    )


@app.command()
def up(
    host: str | None = typer.Option(None, help="Bind address (default ATRIUM_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default ATRIUM_API_PORT)."),
) -> None:
    """Start Atrium locally in the foreground: a Ray head (unless ATRIUM_RAY_ADDRESS names
    a cluster), then the control plane, whose reconciler deploys the Serve applications.
    Ctrl-C stops all of it."""
    settings = _settings()
    if port is not None:
        settings = settings.model_copy(update={"api_port": port})
    if settings.cluster_url is not None:
        _serve(settings, host, None)
        return
    from cluster import local
    from control_plane.services import ray_token

    _ports_free(settings)
    ensure_private_dir(settings.home_dir)
    head = local.start(
        token=ray_token(settings),
        dashboard_port=settings.ray_dashboard_port,
        high_throughput=settings.serve_high_throughput,
    )
    console.print(f"Ray dashboard (loopback only, token in {settings.home_dir / 'ray.token'}):")
    console.print(f"  {head.dashboard_url}")
    console.print(f"Inference: {settings.serve_url}   Control plane: {settings.control_url}")
    try:
        _serve(settings.model_copy(update={"ray_dashboard_url": head.dashboard_url}), host, None)
    finally:
        local.stop()


def _ports_free(settings: Settings) -> None:
    from cluster.ports import Port, taken

    busy = taken(
        [
            Port("ATRIUM_API_PORT", settings.api_host, settings.api_port),
            Port("ATRIUM_SERVE_PORT", settings.serve_host, settings.serve_port),
            Port("ATRIUM_RAY_DASHBOARD_PORT", "127.0.0.1", settings.ray_dashboard_port),
        ]
    )
    for port in busy:
        console.print(
            f"port {port.number} ({port.setting}) is already in use on {port.host}: is"
            f" another `atrium up` running? Stop it, or set {port.setting} to a free port."
        )
    if busy:
        raise typer.Exit(1)


@app.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (default ATRIUM_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default ATRIUM_API_PORT)."),
) -> None:
    """Start only the control plane (applies migrations first)."""
    _serve(_settings(), host, port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations."""
    settings = _settings()
    _prepare(settings)
    console.print("database is at the latest migration")


@admin_app.command("create")
def admin_create(
    email: str = typer.Option(..., help="Email of the platform admin."),
    password: str = typer.Option(..., help="At least 12 characters.", prompt=True, hide_input=True),
) -> None:
    """Create a platform admin (does nothing if the email exists)."""
    from control_plane.bootstrap import ensure_platform_admin
    from control_plane.observability import Metrics
    from control_plane.services import Services

    settings = _settings()
    _prepare(settings)

    async def run() -> bool:
        services = Services.build(settings, Metrics())
        try:
            return await ensure_platform_admin(services, email, password)
        finally:
            await services.db.dispose()

    try:
        created = asyncio.run(run())
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print("platform admin created" if created else "platform admin already exists")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Sign new access tokens with a new key; the old key verifies until its tokens expire."""
    from control_plane.auth.keyring import KeyRing

    settings = _settings()
    if settings.jwt_private_key is not None:
        console.print("[red]ATRIUM_JWT_PRIVATE_KEY is set: rotate by changing that setting[/red]")
        raise typer.Exit(2)
    ring = KeyRing(settings.home_dir / "keys")
    grace = settings.access_token_ttl_seconds + settings.jwt_leeway_seconds
    key = ring.rotate(retire_after_s=grace)
    console.print(f"new signing key {key.kid}; previous keys verify for {grace}s more")


@billing_app.command("close-period")
def billing_close_period(
    period: str | None = typer.Option(None, help="YYYY-MM; default: the month that just ended."),
) -> None:
    """Issue the invoices of a finished month (safe to run again: issues each once)."""
    from datetime import timedelta

    from control_plane.billing.service import PeriodOpen, close_period
    from control_plane.db import Database
    from control_plane.kit.clock import utcnow
    from control_plane.plan.catalog import load_catalog
    from control_plane.quota.periods import month_label, month_start

    settings = _settings()
    _prepare(settings)
    label = period or month_label(month_start(utcnow()) - timedelta(days=1))

    async def run() -> int:
        db = Database(settings.resolved_database_url)
        try:
            return len(await close_period(db, load_catalog(settings.plans_file), label))
        finally:
            await db.dispose()

    try:
        issued = asyncio.run(run())
    except (PeriodOpen, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{label}: issued {issued} invoice(s)")


@audit_app.command("verify")
def audit_verify(
    heads: bool = typer.Option(
        False, "--heads", help="Print each chain's last row and hash, to keep elsewhere."
    ),
) -> None:
    """Check the audit trail's hash chains: exit 1 naming the first bad row of each broken
    chain (a row changed, removed or slipped in). Rows cut off the end of a chain are
    caught only against heads printed earlier."""
    from sqlalchemy.exc import SQLAlchemyError

    from control_plane.audit.chain import Break, Head, ownership_warning, verify
    from control_plane.db import Database

    settings = _settings()

    async def run() -> tuple[list[Head], list[Break], str | None]:
        db = Database(settings.resolved_database_url)
        try:
            return (*await verify(db), await ownership_warning(db))
        finally:
            await db.dispose()

    try:
        found, broken, warning = asyncio.run(run())
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


@webhooks_app.command("listen")
def webhooks_listen(
    secret: str = typer.Option(..., help="The whsec_… secret shown when the webhook was made."),
    port: int = typer.Option(9000, help="Port on 127.0.0.1."),
) -> None:
    """Receive webhooks locally, verify their Standard Webhooks signature, print them."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as exc:
                console.print(f"[red]rejected: {exc}[/red]")
                self.send_response(401)
            else:
                console.print(f"[green]verified[/green] {event['type']} {event['data']}")
                self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    console.print(f"listening on http://127.0.0.1:{port}/ (Ctrl-C stops)")
    server = HTTPServer(("127.0.0.1", port), Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@keys_app.command("rotate-master")
def keys_rotate_master(
    new_key: str | None = typer.Option(
        None, help="Base64 of 32 bytes; required when ATRIUM_MASTER_KEY is set, else generated."
    ),
) -> None:
    """Re-wrap every tenant's data key under a new master key (blobs are not rewritten).
    Restart the servers afterwards so they wrap new tenants' keys with it."""
    from control_plane.artifact.keys import (
        master_key_text,
        new_master_key,
        rewrap_all,
        store_master_key,
    )
    from control_plane.db import Database

    settings = _settings()
    _prepare(settings)
    if settings.master_key is not None and new_key is None:
        console.print(
            "[red]ATRIUM_MASTER_KEY is set: pass --new-key, then update the setting[/red]"
        )
        raise typer.Exit(2)
    old, new = master_key_text(settings), new_key or new_master_key()

    async def run() -> int:
        db = Database(settings.resolved_database_url)
        try:
            return await rewrap_all(db, old, new)
        finally:
            await db.dispose()

    try:
        count = asyncio.run(run())
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if settings.master_key is None:
        store_master_key(settings, new)
        console.print(f"re-wrapped {count} data key(s); the new master key is in ATRIUM_HOME")
    else:
        console.print(f"re-wrapped {count} data key(s); now set ATRIUM_MASTER_KEY to the new key")
