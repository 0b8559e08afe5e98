"""Before anything starts: are the ports ``atrium up`` needs free? A second ``atrium
up`` (or anything else on those ports) is named in one line, not in Ray's traceback."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Port:
    setting: str  # the environment variable that moves it
    host: str
    number: int


def taken(ports: list[Port]) -> list[Port]:
    """The ports among ``ports`` something else already listens on (0: any, never taken)."""
    return [p for p in ports if p.number and not _bindable(p.host, p.number)]


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
