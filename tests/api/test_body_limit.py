"""Request bodies are limited before anything parses them: an oversized body is answered
413 at once (by its Content-Length, or counted as it streams in without one), and nothing
past the limit is read; uploads keep their plan's own, larger, streamed limits."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import Message

from control_plane.app import create_app
from control_plane.kit.body_limit import BodyLimitMiddleware
from tests.api.databases import TestDatabase
from tests.api.world import Api, World, build_world
from tests.support import free_port, make_settings

REFRESH = "/api/v1/auth/refresh"
MB = 1_000_000


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def test_an_oversized_body_is_refused_before_it_is_parsed(api: Api) -> None:
    big = json.dumps({"refresh_token": "x" * (2 * 1024 * 1024)})
    body = _problem(api.post(REFRESH, content=big), 413, "payload_too_large")
    assert "1048576 bytes" in body["detail"]
    # without a Content-Length (chunked), counted as it comes
    chunks = (b"x" * 65536 for _ in range(64))
    _problem(api.post(REFRESH, content=chunks), 413, "payload_too_large")
    # within the limit, the route answers as before
    small = api.post(REFRESH, json={"refresh_token": "not a token"})
    assert small.status_code == 401, small.text


def test_the_limit_is_a_setting(make_client: Callable[..., Api]) -> None:
    api = make_client(max_body_bytes=4096)
    _problem(api.post(REFRESH, content=b"{" + b" " * 5000 + b"}"), 413, "payload_too_large")


def test_uploads_keep_their_plans_limits(make_client: Callable[..., Api]) -> None:
    api = make_client(max_body_bytes=64 * 1024)
    world: World = build_world(api)
    token = world.acme["developer"].token
    rows = b"".join(b"%d,%d\n" % (n, n * 2) for n in range(40_000))  # about 500 kB
    csv = b"a,b\n" + rows
    assert len(csv) > 64 * 1024
    response = api.post(
        "/api/v1/datasets", token, files={"file": ("t.csv", csv)}, data={"name": "big"}
    )
    assert response.status_code == 201, response.text
    # the same size of JSON to a route that is not an upload: 413
    too_big = {"name": "m", "description": "x" * len(csv)}
    _problem(api.post("/api/v1/models", token, json=too_big), 413, "payload_too_large")
    # and an upload past the plan's max_upload_mb is refused by the plan's limit
    admin = world.admin_token
    limits = {"limits": {"max_upload_mb": 0.1}}
    assert api.call("PUT", f"/api/v1/tenants/{world.acme.id}/limits", admin, json=limits)
    refused = api.post(
        "/api/v1/datasets", token, files={"file": ("t.csv", csv)}, data={"name": "bigger"}
    )
    assert "uploads are limited to 0.1 MB" in _problem(refused, 413, "payload_too_large")["detail"]


# --- on a real server: memory stays flat whatever the client sends -------------------


@pytest.fixture
def served(database: TestDatabase, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The app behind uvicorn on a loopback port."""
    settings = make_settings(tmp_path / "home", database.url_for(tmp_path))
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(30)


def _head(framing: str) -> bytes:
    return (
        f"POST {REFRESH} HTTP/1.1\r\nhost: atrium\r\ncontent-type: application/json\r\n"
        f"{framing}\r\n\r\n"
    ).encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 62


def test_a_declared_100_mb_body_is_refused_before_it_is_sent(served: tuple[str, int]) -> None:
    with socket.create_connection(served, timeout=10) as sock:
        sock.sendall(_head("content-length: 100000000"))  # and not a byte of the body
        status, body = _response(sock)
    assert (status, body["code"]) == (413, "payload_too_large")


def test_a_chunked_100_mb_body_is_cut_off_at_the_limit(served: tuple[str, int]) -> None:
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    with socket.create_connection(served, timeout=10) as sock:
        sock.sendall(_head("transfer-encoding: chunked"))
        while sent < 100 * MB and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading and hung up
            sent += len(chunk)
        status, body = _response(sock)
    assert (status, body["code"]) == (413, "payload_too_large")
    # the server read about 1 MiB; the rest of what was sent sat in socket buffers
    assert sent < 25 * MB


# --- the middleware itself ---------------------------------------------------------


def test_the_answer_is_413_whatever_the_app_makes_of_the_interruption() -> None:
    """An app that catches the error and answers 400 (as a body parser would) still
    gives the client 413; and it never gets past the limit."""
    pulled = [0]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            while (await receive())["more_body"]:
                pulled[0] += 1
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad"})

    async def endless() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    limited = BodyLimitMiddleware(app, max_bytes=10_000)
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(limited(scope, endless, send))
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "payload_too_large"
    assert pulled[0] == 10  # 10 x 1000 bytes, then the 11th chunk crossed the limit
