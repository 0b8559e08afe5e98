"""`atrium samples DIR`: sample data for a first session, made on the spot."""

from __future__ import annotations

from pathlib import Path

import typer

from control_plane.cli.common import console


def samples(
    directory: Path = typer.Argument(Path("sample-models"), help="Where to write them."),
    only: list[str] = typer.Option(
        None, "--format", help="Only these formats (repeat the option); default: every one."
    ),
) -> None:
    """Write a tiny model of every format, a signature, a broken model and a CSV dataset.

    Everything is trained on the spot (nothing is downloaded): one folder per format
    (torch and TensorFlow need the ml extra, which `make run` installs), signature.json,
    broken.onnx (to see a rejection) and customers.csv.

    Example: atrium samples sample-models --format onnx --format sklearn-skops
    """
    from serve_apps.runtime.samples import MAKERS, write_samples

    unknown = sorted(set(only or ()) - set(MAKERS))
    if unknown:
        console.print(
            f"[red]unknown format(s): {', '.join(unknown)}; known: {', '.join(MAKERS)}[/red]"
        )
        raise typer.Exit(2)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        written = write_samples(directory, list(only) if only else None)
    except ImportError as exc:
        console.print(
            f"[red]{exc.name or exc} is not installed: `make run` (or pip install "
            "'atrium[ml]') brings every framework, or pick formats with --format[/red]"
        )
        raise typer.Exit(1) from None
    for what, path in written:
        typer.echo(f"{what:14} {path}")
