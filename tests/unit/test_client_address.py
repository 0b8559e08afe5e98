"""Who the client is, for throttling and the audit trail: X-Forwarded-For is believed
only from trusted proxies, read from the right; IPv6 clients are counted per /64."""

from __future__ import annotations

import pytest

from control_plane.auth.throttle import address_key
from control_plane.kit.forwarded import client_address, networks

PROXIES = networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "client"),
    [
        pytest.param("203.0.113.7", ["192.0.2.1"], (), "203.0.113.7", id="no-proxies-configured"),
        pytest.param(
            "203.0.113.7", ["192.0.2.1"], PROXIES, "203.0.113.7", id="peer-is-not-a-proxy"
        ),
        pytest.param("10.0.0.5", [], PROXIES, "10.0.0.5", id="proxy-without-header"),
        pytest.param(
            "10.0.0.5",
            ["192.0.2.1, 203.0.113.7"],
            PROXIES,
            "203.0.113.7",
            id="right-most-is-the-client",
        ),
        pytest.param(
            "10.0.0.5",
            ["192.0.2.1, 203.0.113.7, 10.9.9.9"],
            PROXIES,
            "203.0.113.7",
            id="skips-trusted-hops",
        ),
        pytest.param(
            "10.0.0.5", ["192.0.2.1", "203.0.113.7"], PROXIES, "203.0.113.7", id="two-headers"
        ),
        pytest.param("10.0.0.5", ["10.1.1.1, 10.2.2.2"], PROXIES, "10.1.1.1", id="all-trusted"),
        pytest.param(
            "10.0.0.5", ["203.0.113.7, not-an-ip"], PROXIES, "10.0.0.5", id="garbage-stops"
        ),
        pytest.param(
            "10.0.0.5", ["[2001:db8::1]:443"], PROXIES, "2001:db8::1", id="bracketed-v6-port"
        ),
        pytest.param("10.0.0.5", ["203.0.113.7:5555"], PROXIES, "203.0.113.7", id="v4-port"),
        pytest.param("::ffff:10.0.0.5", ["203.0.113.7"], PROXIES, "203.0.113.7", id="v4-mapped"),
        pytest.param("fd00::1", ["2001:db8::9"], PROXIES, "2001:db8::9", id="v6-proxy"),
        pytest.param("testclient", ["192.0.2.1"], PROXIES, "testclient", id="not-an-address"),
        pytest.param(None, ["192.0.2.1"], PROXIES, None, id="no-peer"),
    ],
)
def test_client_address(
    peer: str | None, forwarded: list[str], proxies: tuple[object, ...], client: str | None
) -> None:
    assert client_address(peer, forwarded, proxies) == client  # type: ignore[arg-type]


def test_ipv6_clients_are_counted_per_64() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::ffff")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")


def test_ipv4_clients_are_counted_per_address() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("203.0.113.8") != address_key("203.0.113.7")
    assert address_key(None) == "unknown"


def test_trusted_proxies_must_be_networks() -> None:
    from control_plane.config import Settings

    with pytest.raises(ValueError, match="not-a-network"):
        Settings(_env_file=None, trusted_proxies=["not-a-network"])
