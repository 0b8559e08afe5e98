"""A small closed-loop HTTP/1.1 load generator (keep-alive, fixed concurrency).

Raw asyncio streams keep the client cheap, so on a small machine the server,
not the client, is what gets measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def _worker(host: str, port: int, request: bytes, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            counts[0 if status == 200 else 1] += 1
    finally:
        writer.close()


async def _run(host: str, port: int, request: bytes, seconds: float, concurrency: int) -> Result:
    counts = [0, 0]
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_worker(host, port, request, stop_at, counts) for _ in range(concurrency))
    )
    return Result(counts[0], counts[1], time.perf_counter() - started)


def load(
    host: str,
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    seconds: float = 5.0,
    concurrency: int = 32,
) -> Result:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return asyncio.run(_run(host, port, request, seconds, concurrency))
