"""A size limit on request bodies, applied before anything parses them.

The limit is applied when the route first asks for the body: a declared
``Content-Length`` over it is answered 413 at once, without reading a byte; a body
without one (chunked) is counted as it streams in and stopped with 413 as soon as the
count crosses it. Nothing past the limit is read, so memory stays flat whatever the
client sends. A route that never reads its body reads none of it.

Routes that stream a multipart upload themselves (model versions, datasets: those
declared with ``kit.uploads.upload_form``) are left to the limits of the tenant's plan,
which they apply while streaming. The route is known by then: the body is read after
routing (``scope["route"]``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.errors import PayloadTooLarge
from control_plane.kit.context import current_request_id
from control_plane.kit.problems import error_body


class _TooLarge(Exception):
    """Raised into the app by ``receive`` once the body crosses the limit."""


# a route whose ``openapi_extra`` sets this reads its body itself, under its plan's limit
PLAN_LIMITED = "x-atrium-plan-limited-upload"


def streams_upload(route: Any) -> bool:
    """Whether a route reads an upload itself (see ``kit.uploads``): a multipart form, or
    one marked ``PLAN_LIMITED`` (a Ray job's package)."""
    extra = getattr(route, "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content", {})
    return "multipart/form-data" in content or bool(extra.get(PLAN_LIMITED))


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(scope, receive, send, self.max_bytes)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:  # _TooLarge, or what the app turned it into
            if not body.exceeded:
                raise
        if body.exceeded and not body.started:
            await _refuse(scope, send, self.max_bytes)


class _Body:
    """One request's body, counted against its route's limit as the route reads it."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        self._scope, self._receive, self._send = scope, receive, send
        self._max_bytes = max_bytes
        self._limit: int | None = None
        self._decided = False
        self._received = 0
        self.exceeded = self.started = False

    def _decide(self) -> None:
        """On the first read: the route is known, and so is its limit."""
        self._decided = True
        if not streams_upload(self._scope.get("route")):
            self._limit = self._max_bytes
            self.exceeded = _declared_length(self._scope) > self._limit

    async def receive(self) -> Message:
        if not self._decided:
            self._decide()
        if self.exceeded:
            raise _TooLarge
        message = await self._receive()
        if self._limit is not None and message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            self.exceeded = self._received > self._limit
            if self.exceeded:
                raise _TooLarge
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:  # whatever the app makes of the interruption, the answer is ours
            return
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


async def _refuse(scope: Scope, send: Send, max_bytes: int) -> None:
    error = PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
    body = json.dumps(
        error_body(error, instance=scope.get("path"), request_id=current_request_id())
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is not read: do not reuse
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses a malformed length itself
    return 0
