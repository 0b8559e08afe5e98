"""The one place errors become RFC 9457 Problem Details responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from control_plane.errors import (
    AtriumError,
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from control_plane.kit.context import current_request_id

log = logging.getLogger(__name__)
_HTTP_ERRORS: dict[int, type[AtriumError]] = {
    error.status: error
    for error in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        UnsupportedMediaType,
    )
}


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None,
    request_id: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Problem Details body, the same for the API and the inference gateway."""
    return {
        "type": f"urn:atrium:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "request_id": request_id,
        **(extra or {}),
    }


def error_body(
    error: AtriumError, *, instance: str | None, request_id: str | None
) -> dict[str, Any]:
    """The Problem Details body of one of our errors."""
    return problem_body(
        error.status,
        error.code,
        error.title,
        error.detail,
        instance=instance,
        request_id=request_id,
        extra=error.extra,
    )


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(
        status,
        code,
        title,
        detail,
        instance=instance,
        request_id=current_request_id(),
        extra=extra,
    )
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


async def _atrium_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AtriumError)
    body = error_body(exc, instance=request.url.path, request_id=current_request_id())
    return JSONResponse(
        body, status_code=exc.status, headers=exc.headers, media_type="application/problem+json"
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def _error(e: dict[str, Any]) -> dict[str, str]:
    if e.get("type") == "json_invalid":  # its loc holds a character offset, not a field
        where = e["loc"][-1] if len(e["loc"]) > 1 else "?"
        why = (e.get("ctx") or {}).get("error", "")
        return {"field": "body", "message": f"not valid JSON at character {where}: {why}"}
    return {"field": _field(e["loc"]), "message": e["msg"]}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_error(e) for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(
        ValidationFailed.status,
        ValidationFailed.code,
        ValidationFailed.title,
        detail,
        instance=request.url.path,
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    known = _HTTP_ERRORS.get(exc.status_code)
    code = known.code if known else "http_error"
    title = known.title if known else "HTTP error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(
        exc.status_code,
        code,
        title,
        detail,
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(
        AtriumError.status,
        AtriumError.code,
        AtriumError.title,
        "an unexpected error occurred",
        instance=request.url.path,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AtriumError, _atrium_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
