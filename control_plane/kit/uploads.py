"""Multipart uploads read as a stream: the file part goes straight to its consumer
(the artifact store) chunk by chunk, so it is never whole in memory or spooled to disk,
and the size limit stops it as soon as it is crossed.

Starlette's ``request.form()`` would spool the whole file to a temporary file before
the route could check the caller's plan limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from control_plane.errors import BadRequest, UnsupportedMediaType, ValidationFailed

T = TypeVar("T")
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 20


@dataclass
class Form(Generic[T]):
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    stored: T | None = None


FileSink = Callable[[AsyncIterator[bytes]], Awaitable[T]]


class _Events:
    """Feeds the request body to python-multipart and hands its events out one by one."""

    def __init__(self, request: Request, boundary: bytes) -> None:
        self._body = request.stream().__aiter__()
        self._queue: deque[tuple[str, Any]] = deque()
        self._header: list[bytes] = [b"", b""]

        def put(kind: str) -> Callable[..., None]:
            return lambda *a: self._queue.append((kind, bytes(a[0][a[1] : a[2]]) if a else None))

        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": put("begin"),
                "on_part_data": put("data"),
                "on_part_end": put("end"),
                "on_header_field": put("hname"),
                "on_header_value": put("hvalue"),
                "on_header_end": put("hend"),
                "on_headers_finished": put("headers"),
                "on_end": put("finished"),
            },
        )

    async def next(self) -> tuple[str, Any]:
        while not self._queue:
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                raise BadRequest("the multipart body ended before its closing boundary") from None
            try:
                self._parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own parse errors
                raise BadRequest(f"the multipart body is malformed: {exc}") from exc
        return self._queue.popleft()

    async def headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        name = value = b""
        while True:
            kind, data = await self.next()
            if kind == "hname":
                name += data
            elif kind == "hvalue":
                value += data
            elif kind == "hend":
                found[name.decode("latin-1").lower()] = value.decode("latin-1")
                name = value = b""
            elif kind == "headers":
                return found

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's content, up to its end."""
        while True:
            kind, data = await self.next()
            if kind == "end":
                return
            if data:
                yield data


async def read_form(request: Request, form: Form[T], *, file_field: str, sink: FileSink[T]) -> None:
    """Fill ``form`` with the text fields, and with what ``sink`` made of the one file
    part. ``form.stored`` is set as soon as the sink has returned: if anything fails
    afterwards, the caller finds there what it must undo."""
    boundary = _boundary(request.headers.get("content-type", ""))
    events = _Events(request, boundary)
    while True:
        kind, _ = await events.next()
        if kind == "finished":
            return
        if kind != "begin":
            continue
        name, filename = _disposition(await events.headers())
        if name == file_field:
            if form.filename is not None:
                raise ValidationFailed("send one file per upload", extra={"field": file_field})
            form.filename = filename or ""
            form.stored = await sink(events.data())
        else:
            form.fields[name] = await _field(name, events, form)


def _boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise UnsupportedMediaType("send the upload as multipart/form-data")
    return options[b"boundary"]


def _disposition(headers: dict[str, str]) -> tuple[str, str | None]:
    kind, options = parse_options_header(headers.get("content-disposition", ""))
    if kind != b"form-data" or b"name" not in options:
        raise BadRequest("every multipart part needs a Content-Disposition: form-data name")
    filename = options.get(b"filename")
    return options[b"name"].decode(), filename.decode() if filename is not None else None


async def _field(name: str, events: _Events, form: Form[Any]) -> str:
    if name in form.fields or len(form.fields) >= MAX_FIELDS:
        raise ValidationFailed(f"form field '{name}' is repeated or there are too many fields")
    value = b""
    async for chunk in events.data():
        value += chunk
        if len(value) > MAX_FIELD_BYTES:
            raise ValidationFailed(
                f"form field '{name}' is longer than {MAX_FIELD_BYTES} bytes",
                extra={"field": name},
            )
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ValidationFailed(f"form field '{name}' is not UTF-8", extra={"field": name}) from None


def form_error(exc: ValidationError) -> RequestValidationError:
    """Form fields' errors, reported like any request body's (one Problem Details)."""
    return RequestValidationError(
        [{"loc": ("form", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    )


def upload_form(*, required: list[str], **fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``openapi_extra`` for a route that reads its multipart body itself: a
    ``file`` part plus these text fields."""
    properties = {"file": {"type": "string", "format": "binary"}, **fields}
    schema = {"type": "object", "required": ["file", *required], "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }
