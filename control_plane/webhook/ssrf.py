"""Webhook targets must be public: no loopback, link-local, private or cluster addresses.

A URL is checked when the webhook is registered (a clear 422), and its host is resolved
and vetted again on every connection the dispatcher opens, which then connects to one of
the very addresses it vetted (see ``transport``): no second lookup an attacker's DNS
could answer differently.

IPv6 addresses that carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4,
Teredo) are judged by the IPv4 address they lead to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from control_plane.errors import ValidationFailed

_CLUSTER_SUFFIXES = (".svc", ".cluster.local", ".internal", ".local", "localhost")

# (host, port) -> the addresses it resolves to, as text
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215
_SIIT_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 ::ffff:0:a.b.c.d
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


# an operator testing with a local receiver needs to know the switch exists
_ALLOW_HINT = " (an operator may allow a host with ATRIUM_WEBHOOK_ALLOWED_HOSTS)"


def _refused(detail: str) -> ValidationFailed:
    return ValidationFailed(f"webhook url refused: {detail}", extra={"field": "url"})


def _rfc6052_ipv4(ip: ipaddress.IPv6Address, prefix_len: int) -> ipaddress.IPv4Address:
    """The IPv4 address embedded after a NAT64 prefix of ``prefix_len`` bits (RFC 6052
    section 2.2: bits 64-71 are the reserved "u" octet, never part of the address)."""
    raw = ip.packed
    if prefix_len == 96:
        return ipaddress.IPv4Address(raw[12:16])
    start = prefix_len // 8
    octets = [b for i, b in enumerate(raw[start : start + 5], start) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(octets))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses a packet to ``ip`` may end up at, for addresses of a translation
    or tunnelling prefix; None for an ordinary IPv6 address."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _SIIT_TRANSLATED or ip in _NAT64_WELL_KNOWN:
        return [_rfc6052_ipv4(ip, 96)]
    if ip in _NAT64_LOCAL_USE:
        # the operator picks the prefix length (48..96): every reading must be public
        return [_rfc6052_ipv4(ip, n) for n in (48, 56, 64, 96)]
    if ip in _SIX_TO_FOUR:
        assert ip.sixtofour is not None
        return [ip.sixtofour]
    if ip in _TEREDO:
        assert ip.teredo is not None
        server, client = ip.teredo
        return [server, client]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1, judged below
        return [ipaddress.IPv4Address(ip.packed[12:16])]
    return None


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def is_public(address: str) -> bool:
    """Whether a webhook may be delivered to this IP address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id marks link-local
    if "%" in address:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return all(_public(v4) for v4 in embedded)
    return _public(ip)


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    host: str
    port: int


def _allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    return host in {h.lower().rstrip(".") for h in allowed_hosts}


def parse_target(url: str, allowed_hosts: Iterable[str]) -> Target:
    """The URL's host and port; 422 unless it is http(s) with a host that may be public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise _refused("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused("the port is not a number from 0 to 65535") from None
    host = parts.hostname.lower().rstrip(".")
    if not _allowed(host, allowed_hosts) and (
        host.endswith(_CLUSTER_SUFFIXES) or ("." not in host and ":" not in host)
    ):
        raise _refused(f"{host} is an internal name{_ALLOW_HINT}")
    return Target(host, port)


async def vetted_addresses(
    host: str, port: int, allowed_hosts: Iterable[str], resolver: Resolver
) -> list[str] | None:
    """Resolve ``host`` once and return its addresses, all of them public; raise 422 if
    any is not (one private answer among public ones is refused too: which one a client
    picks is not ours to guess). None for a host the operator allowed: it is connected to
    as it is, without vetting."""
    host = host.strip("[]").lower().rstrip(".")
    if _allowed(host, allowed_hosts):
        return None
    try:
        addresses = await resolver(host, port)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        raise _refused(f"{host} does not resolve") from None
    if not addresses:
        raise _refused(f"{host} does not resolve")
    bad = sorted({a for a in addresses if not is_public(a)})
    if bad:
        raise _refused(f"{host} resolves to non-public addresses {', '.join(bad)}{_ALLOW_HINT}")
    return addresses


async def check_url(
    url: str, allowed_hosts: list[str], resolver: Resolver = system_resolver
) -> None:
    """Raise 422 unless ``url`` is http(s) and every address it resolves to is public
    (or its host is one an operator allowed)."""
    target = parse_target(url, allowed_hosts)
    await vetted_addresses(target.host, target.port, allowed_hosts, resolver)
