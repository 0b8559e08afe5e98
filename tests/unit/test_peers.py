"""Shared-token checks and client networks for the platform's own routes."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from control_plane.kit.peers import bearer_matches, direct_peer, peer_in


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer ", ""),  # the hole: an empty configured token
        ("Bearer", ""),
        ("Bearer    ", ""),
        ("Bearer ", None),
        (None, ""),
        ("Bearer secret", ""),
        ("", "secret"),
        ("Bearer ", "secret"),
        ("Basic secret", "secret"),
        ("Bearer secre", "secret"),
    ],
)
def test_no_token_or_an_empty_one_never_matches(header: str | None, expected: str | None) -> None:
    assert not bearer_matches(header, expected)


def test_the_token_matches() -> None:
    assert bearer_matches("Bearer secret", "secret")
    assert bearer_matches("bearer secret", "secret")


def _request(host: str, *headers: tuple[bytes, bytes]) -> Request:
    scope = {"type": "http", "client": (host, 1234), "headers": list(headers)}
    return Request(scope)


def test_the_direct_peer_is_the_socket_peer_unless_a_proxy_relayed() -> None:
    assert str(direct_peer(_request("127.0.0.1"))) == "127.0.0.1"
    assert str(direct_peer(_request("::ffff:127.0.0.1"))) == "127.0.0.1"
    assert direct_peer(_request("testclient")) is None
    assert direct_peer(_request("127.0.0.1", (b"x-forwarded-for", b"8.8.8.8"))) is None
    assert direct_peer(_request("127.0.0.1", (b"forwarded", b"for=8.8.8.8"))) is None
    assert peer_in(_request("10.2.3.4"), ["10.0.0.0/8"])
    assert not peer_in(_request("10.2.3.4"), ["127.0.0.0/8", "::1/128"])
