"""Run a command, and relay a Unix socket to one of its TCP ports on loopback.

A tenant's Ray head runs in a network namespace of its own (no network at all: only
its loopback), so nothing it runs can reach the platform's Postgres, Redis, Ray or the
internet. The control plane reaches the head's dashboard (Jobs API, WebSockets
included) through a Unix socket in the sandbox's scratch directory, which this relay,
started inside the sandbox, joins to the dashboard's port. It exits with the command.

    python -m cluster.relay SOCKET PORT -- COMMAND...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

CHUNK = 1 << 16


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(socket_path: str, port: int, command: list[str]) -> int:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_unix_server(relay, path=socket_path)
    os.chmod(socket_path, 0o600)
    child = await asyncio.create_subprocess_exec(*command)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, child.terminate)
    code = await child.wait()
    server.close()
    return code


def main() -> None:
    socket_path, port, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit("usage: python -m cluster.relay SOCKET PORT -- COMMAND...")
    raise SystemExit(asyncio.run(_serve(socket_path, int(port), command)))


if __name__ == "__main__":
    main()
