"""A loopback TCP server whose handler speaks HTTP by hand: to behave as a hostile or
broken webhook receiver would (drip an answer, never answer, answer without end)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

Handler = Callable[["Connection"], None]


class Connection:
    def __init__(self, server: RawServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    def read_request(self) -> tuple[dict[str, str], bytes]:
        """The request's headers (lower-case names) and body (by Content-Length)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the headers ended")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
        while len(body) < int(headers.get("content-length", 0)):
            body += self.sock.recv(65536)
        self.server.requests.append(headers)
        return headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        with self.server.lock:
            self.server.sent += len(data)

    @property
    def stopping(self) -> bool:
        return self.server.stopped.is_set()


class RawServer:
    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        self.sent = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self._listener = socket.create_server((host, port))
        self._socks: list[socket.socket] = []
        self.host, self.port = self._listener.getsockname()[:2]

    def url(self, host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}/hook"

    def __enter__(self) -> RawServer:
        if self.tls is not None:
            self.tls.sni_callback = self._sni
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stopped.set()
        self._listener.close()
        with self.lock:
            for sock in self._socks:
                sock.close()

    def _sni(self, _sock: Any, name: str | None, _ctx: Any) -> None:
        self.server_names.append(name)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self.lock:
                    self._socks.append(sock)
            self.handler(Connection(self, sock))
        except (OSError, ValueError):
            pass  # the client went away, or the server is stopping
        finally:
            sock.close()


def answer(status: int = 204) -> Handler:
    """Read the request and answer ``status`` with no body."""

    def handle(conn: Connection) -> None:
        conn.read_request()
        conn.send(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())

    return handle


def drip(interval_s: float = 0.05) -> Handler:
    """Answer 200 promising a megabyte, then send it a byte at a time, slowly."""

    def handle(conn: Connection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
        while not conn.stopping:
            conn.send(b"x")
            time.sleep(interval_s)

    return handle


def hang(conn: Connection) -> None:
    """Read the request and never answer."""
    conn.read_request()
    conn.server.stopped.wait(60)


def flood(total: int = 64 * 1024 * 1024) -> Handler:
    """Answer 200 with ``total`` bytes, as fast as the client takes them."""

    def handle(conn: Connection) -> None:
        conn.read_request()
        conn.send(f"HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n".encode())
        chunk = b"\0" * 65536
        for _ in range(total // len(chunk)):
            conn.send(chunk)

    return handle
