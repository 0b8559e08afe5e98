"""Every `atrium` command says what it does in one line and shows an example."""

from __future__ import annotations

from typing import Any

import typer.main

from control_plane.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(``db upgrade``, its help text) for every command under ``group``."""
    found: list[tuple[str, str]] = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
        else:
            found.append((" ".join((*path, name)), command.help or ""))
    return found


def test_every_command_has_a_one_line_summary_and_an_example() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) == 17
    for name, text in commands:
        summary = text.split("\n\n")[0].strip()
        assert summary and "\n" not in summary, name
        assert f"Example: atrium {name}" in text, name
