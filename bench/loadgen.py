"""A small closed-loop HTTP/1.1 load generator (keep-alive, fixed concurrency).

Raw asyncio streams keep the client cheap, so on a small machine the server,
not the client, is what gets measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """Latency (seconds) of successful and failed requests alike."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _worker(
    host: str, port: int, request: bytes, stop_at: float, counts: list[int], times: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            times.append(time.perf_counter() - sent)
            counts[0 if status == 200 else 1] += 1
    finally:
        writer.close()


async def _run(host: str, port: int, request: bytes, seconds: float, concurrency: int) -> Result:
    counts: list[int] = [0, 0]
    times: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_worker(host, port, request, stop_at, counts, times) for _ in range(concurrency))
    )
    return Result(counts[0], counts[1], time.perf_counter() - started, times)


def load(
    host: str,
    port: int,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    seconds: float = 5.0,
    concurrency: int = 32,
    body: bytes | None = None,
) -> Result:
    method = "GET" if body is None else "POST"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    return asyncio.run(_run(host, port, request, seconds, concurrency))
