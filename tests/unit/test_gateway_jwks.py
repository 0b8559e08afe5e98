"""The gateway's signing keys (JWKS) below a live cluster: fetched off the event loop,
one fetch in flight however many requests name unknown keys, and a minimum interval
between fetches, so forged ``kid``s cannot make the gateway hammer the control plane."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from control_plane.auth.tokens import InvalidToken, TokenVerifier
from serve_apps.gateway.identity import Jwks

pytestmark = pytest.mark.anyio
URL = "http://control.test/.well-known/jwks.json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ControlPlane:
    """Serves the JWKS document; a fetch waits at ``gate`` until the test opens it."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {"k1": Ed25519PrivateKey.generate()}
        self.fetches = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        await self.gate.wait()
        keys = [
            {**json.loads(OKPAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for kid, k in self.keys.items()
        ]
        return httpx.Response(200, json={"keys": keys})

    def token(self, kid: str, signer: Ed25519PrivateKey | None = None) -> str:
        now = int(time.time())
        claims = {
            "sub": "usr_1",
            "tid": "ten_1",
            "iss": "atrium",
            "aud": "atrium-api",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": f"j-{kid}-{now}",
            "typ": "access",
        }
        key = signer or self.keys[kid]
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifier(jwks: Jwks) -> TokenVerifier:
    return TokenVerifier(
        jwks.key_of, issuer="atrium", audience="atrium-api", leeway_s=0, refresh_keys=jwks.refresh
    )


def _jwks(control: ControlPlane, clock: Clock) -> Jwks:
    return Jwks(URL, transport=httpx.MockTransport(control.handle), clock=clock)


async def _outcome(verifier: TokenVerifier, token: str) -> str:
    try:
        return (await verifier.verify_async(token)).sub
    except InvalidToken as exc:
        return f"refused: {exc}"


async def test_looking_a_key_up_never_fetches() -> None:
    control = ControlPlane()
    jwks = _jwks(control, Clock())
    assert jwks.key_of("k1") is None
    assert jwks.key_of("forged") is None
    assert control.fetches == 0  # nothing on the event loop's path, synchronous or not


async def test_many_unknown_kids_share_one_fetch() -> None:
    control, clock = ControlPlane(), Clock()
    verifier = _verifier(_jwks(control, clock))
    control.gate.clear()
    stranger = Ed25519PrivateKey.generate()
    forged = [control.token(f"forged-{n}", stranger) for n in range(50)]
    waiting = [asyncio.create_task(_outcome(verifier, t)) for t in [*forged, control.token("k1")]]
    await asyncio.sleep(0.05)
    assert control.fetches == 1  # one in flight; the other 50 wait for it
    control.gate.set()
    outcomes = await asyncio.gather(*waiting)
    assert outcomes[-1] == "usr_1"
    assert all(o == "refused: unknown signing key" for o in outcomes[:-1])
    assert control.fetches == 1


async def test_fetches_are_spaced_by_the_minimum_interval() -> None:
    control, clock = ControlPlane(), Clock()
    verifier = _verifier(_jwks(control, clock))
    assert await _outcome(verifier, control.token("k1")) == "usr_1"
    control.keys["k2"] = Ed25519PrivateKey.generate()  # the control plane rotates
    new = control.token("k2")
    clock.now += 1
    for _ in range(20):  # too soon: refused without asking again
        assert await _outcome(verifier, new) == "refused: unknown signing key"
    assert control.fetches == 1
    clock.now += 5
    assert await _outcome(verifier, new) == "usr_1"  # rotation needs no restart
    assert control.fetches == 2


async def test_an_unreachable_control_plane_refuses_and_is_asked_again_later() -> None:
    clock = Clock()
    calls: list[Any] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    jwks = Jwks(URL, transport=httpx.MockTransport(down), clock=clock)
    verifier = _verifier(jwks)
    token = ControlPlane().token("k1")
    assert (await _outcome(verifier, token)).startswith("refused")
    assert (await _outcome(verifier, token)).startswith("refused")
    assert len(calls) == 1
    clock.now += 10
    await _outcome(verifier, token)
    assert len(calls) == 2
