"""Who is directly on the other end of a connection, for routes that only some networks
may reach (/internal, /metrics in production). Proxy headers are never believed here:
a request relayed by a proxy is not the proxy's own."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def direct_peer(request: HTTPConnection) -> IPAddress | None:
    """The socket peer's address; None when unknown or when a proxy relayed the request."""
    if any(name in request.headers for name in _PROXY_HEADERS):
        return None
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def peer_in(request: HTTPConnection, networks: Iterable[str]) -> bool:
    peer = direct_peer(request)
    if peer is None:
        return False
    return any(peer in ipaddress.ip_network(n, strict=False) for n in networks)


def bearer_matches(authorization: str | None, expected: str | None) -> bool:
    """`Authorization: Bearer <expected>`, compared in constant time; an empty token (either
    side) never matches."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not expected:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())
