"""`atrium up` and `atrium api`: run the platform, or only its control plane."""

from __future__ import annotations

import typer
import uvicorn

from control_plane.cli.common import console, load_settings, prepare
from control_plane.config import Settings
from control_plane.kit.secret_files import ensure_private_dir

HOST = typer.Option(None, help="Bind address (default ATRIUM_API_HOST).")
PORT = typer.Option(None, help="Port (default ATRIUM_API_PORT).")


def up(host: str | None = HOST, port: int | None = PORT) -> None:
    """Start Atrium locally in the foreground; Ctrl-C stops all of it.

    A Ray head (unless ATRIUM_RAY_ADDRESS names a cluster), then the control plane,
    whose reconciler deploys the Serve applications.

    Example: atrium up --port 8080
    """
    settings = load_settings()
    if port is not None:
        settings = settings.model_copy(update={"api_port": port})
    if settings.cluster_url is not None:
        _serve(settings, host, None)
        return
    from cluster import local
    from cluster.token import ray_token

    _ports_free(settings)
    ensure_private_dir(settings.home_dir)
    head = local.start(
        token=ray_token(settings.ray_auth_token, settings.home_dir),
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


def api(host: str | None = HOST, port: int | None = PORT) -> None:
    """Start only the control plane (applies migrations first).

    Example: atrium api --host 0.0.0.0 --port 8080
    """
    _serve(load_settings(), host, port)


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from control_plane.app import create_app
    from control_plane.observability import configure_logging

    prepare(settings)
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
