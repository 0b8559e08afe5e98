"""The client's address for throttling and the audit trail, through trusted proxies only.

``X-Forwarded-For`` is whatever the client wrote, with each proxy on the way appending
the address it saw. So it is read only when the direct peer is one of the configured
proxies (``ATRIUM_TRUSTED_PROXIES``), and then from the right: the first address that
is not itself a trusted proxy was written by one, and is the client. Everything to its
left is the client's own say, and never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.kit.context import client_address_var

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> IPAddress | None:
    """An address as a socket or a proxy writes it (``[v6]:port`` and ``v4:port`` too);
    IPv4-mapped IPv6 as the IPv4 address. None when it is no address."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _trusted(address: IPAddress, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]
) -> str | None:
    """The client: the peer itself, unless the peer is a trusted proxy, then the right-most
    untrusted hop of ``X-Forwarded-For`` (the left-most if all are trusted). A hop that is
    no address stops the walk at the proxy that wrote it."""
    direct = parse_address(peer) if peer else None
    if direct is None or not proxies or not _trusted(direct, proxies):
        return str(direct) if direct is not None else peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = direct
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


class ClientAddressMiddleware:
    """Sets the request's client address (``kit.context``) as ``client_address`` finds it.
    Installed inside the observability middleware, so access logs carry it too."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.proxies = networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            forwarded = [
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
            ]
            client_address_var.set(
                client_address(client[0] if client else None, forwarded, self.proxies)
            )
        await self.app(scope, receive, send)
