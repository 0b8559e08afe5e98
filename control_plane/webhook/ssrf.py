"""Webhook targets must be public: no loopback, link-local, private or cluster addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from control_plane.errors import ValidationFailed

_CLUSTER_SUFFIXES = (".svc", ".cluster.local", ".internal", ".local", "localhost")


def _refused(detail: str) -> ValidationFailed:
    return ValidationFailed(f"webhook url refused: {detail}", extra={"field": "url"})


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_url(url: str, allowed_hosts: list[str]) -> None:
    """Raise 422 unless ``url`` is http(s) and every address it resolves to is public
    (or its host is one an operator allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise _refused("credentials in the URL are not allowed")
    host = parts.hostname.lower().rstrip(".")
    if host in {h.lower() for h in allowed_hosts}:
        return
    if host.endswith(_CLUSTER_SUFFIXES) or ("." not in host and ":" not in host):
        raise _refused(f"{host} is an internal name")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror:
        raise _refused(f"{host} does not resolve") from None
    bad = sorted({str(info[4][0]) for info in infos if not _is_public(str(info[4][0]))})
    if bad:
        raise _refused(f"{host} resolves to non-public addresses {', '.join(bad)}")
