"""Errors are part of the contract: one machine code means one status, and the OpenAPI
document lists the Problem Details every route can answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control_plane import errors
from control_plane.app import create_app
from tests.support import make_settings


def _all(cls: type[errors.AtriumError]) -> list[type[errors.AtriumError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _all(sub))]


def test_one_code_is_one_status() -> None:
    statuses: dict[str, set[int]] = {}
    for error in _all(errors.AtriumError):
        statuses.setdefault(error.code, set()).add(error.status)
    assert {code: s for code, s in statuses.items() if len(s) > 1} == {}


def test_every_route_lists_its_problems(tmp_path: Path) -> None:
    document: dict[str, Any] = create_app(
        make_settings(tmp_path, "sqlite+aiosqlite:///:memory:")
    ).openapi()
    silent = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            problems = [
                status
                for status, answer in operation.get("responses", {}).items()
                if status.startswith(("4", "5"))
                and "ProblemDetails" in str(answer.get("content", {}))
            ]
            if not problems:
                silent.append(f"{method.upper()} {path}")
    assert silent == []


def test_routes_that_need_credentials_say_so(tmp_path: Path) -> None:
    """`/docs` shows an Authorize button; a generated client knows to send a bearer."""
    document = create_app(make_settings(tmp_path, "sqlite+aiosqlite:///:memory:")).openapi()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = document["paths"]
    assert paths["/api/v1/models"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in paths["/api/v1/auth/token"]["post"]
    assert "security" not in paths["/healthz"]["get"]
