"""What a route adds to honour ``Idempotency-Key``: the header, the problems it can
answer, and its answer built from a ``Stored`` one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response
from pydantic import BaseModel

from control_plane.errors import (
    AtriumError,
    IdempotencyConflict,
    IdempotencyInFlight,
    ValidationFailed,
)
from control_plane.idempotency.service import HEADER, Stored

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=(
            "Up to 255 printable ASCII characters. A retry with the same key and body gets "
            "the first answer again (`Idempotent-Replayed: true`) for 24 h; another body: "
            "422 `idempotency_conflict`; while the first runs: 409 `idempotency_in_flight`."
        ),
    ),
]
IDEMPOTENCY_ERRORS: tuple[type[AtriumError], ...] = (
    ValidationFailed,
    IdempotencyConflict,
    IdempotencyInFlight,
)


def scope_of(request: Request) -> str:
    """The request's method and concrete path: a key on two routes, or on two plugins'
    ``/invoke``, is two keys."""
    return f"{request.method} {request.url.path}"


def stored_json(status_code: int, payload: BaseModel) -> Stored:
    """A pydantic answer as it is sent and kept: its JSON and content type."""
    headers = {"content-type": "application/json"}
    return Stored(status_code, headers, payload.model_dump_json().encode())


def respond(stored: Stored, *, sub: Response) -> Response:
    """``stored`` as the route's response, with the headers its dependencies set on
    ``sub`` (RateLimit-*), which FastAPI adds only to answers it builds itself."""
    response = Response(stored.body, status_code=stored.status_code, headers=stored.headers)
    response.headers.update(sub.headers)
    return response
