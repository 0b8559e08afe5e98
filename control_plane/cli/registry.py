"""`atrium models …` and `atrium datasets …`: the registry from a terminal.

They talk to a running control plane: ATRIUM_URL (default http://127.0.0.1:8080) with
ATRIUM_API_KEY (an API key with models:write, or an access token).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from control_plane.client import ApiError, Client, Upload

models_app = typer.Typer(help="Models, versions and aliases.", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets (CSV, Parquet).", no_args_is_help=True)
console = Console(stderr=True)
out = Console(highlight=False)

URL = typer.Option("http://127.0.0.1:8080", envvar="ATRIUM_URL", help="The control plane.")
KEY = typer.Option(..., envvar="ATRIUM_API_KEY", help="API key or access token.")


def _client(url: str, key: str) -> Client:
    return Client(url, key)


def _fail(exc: ApiError) -> typer.Exit:
    console.print(f"[red]{escape(str(exc))}[/red]")
    return typer.Exit(1)


def _upload(client: Client, path: str, form: Upload, **params: str) -> Any:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"uploading {form.path.name}", total=form.path.stat().st_size)
        answer = client.upload(path, form, lambda n: progress.advance(task, n), **params)
    return answer


@models_app.command("create")
def models_create(
    name: str,
    framework: str = typer.Option(..., help="sklearn, xgboost, torch, tensorflow, onnx, other"),
    description: str = typer.Option("", help="Free text."),
    url: str = URL,
    key: str = KEY,
) -> None:
    """Register a model.

    Example: atrium models create churn --framework sklearn
    """
    body = {"name": name, "framework": framework, "description": description}
    try:
        model = _client(url, key).call("POST", "/api/v1/models", json=body)
    except ApiError as exc:
        raise _fail(exc) from None
    out.print(f"{model['id']}  {model['name']}", markup=False)


@models_app.command("list")
def models_list(url: str = URL, key: str = KEY) -> None:
    """The tenant's models with their latest version and aliases.

    Example: atrium models list
    """
    try:
        page = _client(url, key).call("GET", "/api/v1/models", params={"limit": 200})
    except ApiError as exc:
        raise _fail(exc) from None
    table = Table("id", "name", "framework", "latest", "aliases")
    for m in page["items"]:
        aliases = ", ".join(f"{a}→{v}" for a, v in m["aliases"].items())
        table.add_row(m["id"], m["name"], m["framework"], str(m["latest_version"] or "-"), aliases)
    out.print(table)


@models_app.command("upload")
def models_upload(
    model: str = typer.Argument(..., help="Model name or id."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    fmt: str = typer.Option(..., "--format", help="onnx, xgboost, sklearn-skops, …"),
    signature: str | None = typer.Option(
        None, help="JSON signature, or @file.json (needed by xgboost, sklearn-skops, torchscript)."
    ),
    tag: list[str] = typer.Option([], help="key=value label (repeatable)."),
    wait: bool = typer.Option(True, help="Wait for validation and report the outcome."),
    url: str = URL,
    key: str = KEY,
) -> None:
    """Upload a model file as the next version, then wait until it is validated.

    Shows a progress bar; exits 0 when the version is ready, 1 with the loader's message
    when it is rejected.

    Example: atrium models upload churn model.onnx --format onnx --tag team=risk
    """
    fields = {"format": fmt}
    if signature:
        fields["signature"] = Path(signature[1:]).read_text() if signature[0] == "@" else signature
    if tag:
        fields["tags"] = json.dumps(dict(t.split("=", 1) for t in tag))
    client = _client(url, key)
    try:
        found = client.find_model(model)
        path = f"/api/v1/models/{found['id']}/versions"
        params = {"wait": "true"} if wait else {}
        version = _upload(client, path, Upload(file, fields), **params)
    except ApiError as exc:
        raise _fail(exc) from None
    out.print(
        f"{found['name']} version {version['version']}: {version['status']}"
        f"  sha256 {version['sha256'][:12]}…  {version['size_bytes']} bytes"
    )


@models_app.command("versions")
def models_versions(
    model: str = typer.Argument(..., help="Model name or id."), url: str = URL, key: str = KEY
) -> None:
    """A model's versions: status, format, aliases and any error.

    Example: atrium models versions churn
    """
    client = _client(url, key)
    try:
        found = client.find_model(model)
        page = client.call("GET", f"/api/v1/models/{found['id']}/versions", params={"limit": 200})
    except ApiError as exc:
        raise _fail(exc) from None
    table = Table("version", "status", "format", "size", "aliases", "error")
    for v in page["items"]:
        table.add_row(
            str(v["version"]),
            v["status"],
            v["format"],
            str(v["size_bytes"]),
            ", ".join(v["aliases"]),
            v["error"] or "",
        )
    out.print(table)


@models_app.command("alias")
def models_alias(
    model: str = typer.Argument(..., help="Model name or id."),
    alias: str = typer.Argument(..., help="champion, challenger or any slug."),
    version: int = typer.Argument(..., help="The version number to point at."),
    url: str = URL,
    key: str = KEY,
) -> None:
    """Point an alias at a ready version.

    Example: atrium models alias churn champion 3
    """
    client = _client(url, key)
    try:
        found = client.find_model(model)
        client.call(
            "PUT", f"/api/v1/models/{found['id']}/aliases/{alias}", json={"version": version}
        )
    except ApiError as exc:
        raise _fail(exc) from None
    out.print(f"{found['name']}@{alias} → version {version}")


@datasets_app.command("upload")
def datasets_upload(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    name: str = typer.Option(..., help="Unique in the tenant."),
    fmt: str | None = typer.Option(None, "--format", help="csv or parquet (default: extension)."),
    url: str = URL,
    key: str = KEY,
) -> None:
    """Upload a CSV or Parquet table (with a progress bar).

    Example: atrium datasets upload events.parquet --name events
    """
    fields = {"name": name, **({"format": fmt} if fmt else {})}
    try:
        dataset = _upload(_client(url, key), "/api/v1/datasets", Upload(file, fields))
    except ApiError as exc:
        raise _fail(exc) from None
    columns = ", ".join(f"{c['name']}:{c['type']}" for c in dataset["columns"])
    out.print(
        f"{dataset['id']}  {dataset['name']}  {dataset['rows']} rows  [{columns}]", markup=False
    )


@datasets_app.command("list")
def datasets_list(url: str = URL, key: str = KEY) -> None:
    """The tenant's datasets.

    Example: atrium datasets list
    """
    try:
        page = _client(url, key).call("GET", "/api/v1/datasets", params={"limit": 200})
    except ApiError as exc:
        raise _fail(exc) from None
    table = Table("id", "name", "format", "rows", "size")
    for d in page["items"]:
        table.add_row(d["id"], d["name"], d["format"], str(d["rows"]), str(d["size_bytes"]))
    out.print(table)
