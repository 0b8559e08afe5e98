"""Webhook delivery as a hostile receiver or its DNS meets it: the address connected to is
the one vetted (no rebinding), IPv6 forms of private IPv4 addresses are refused, an
attempt has one deadline and reads a bounded answer, a slow receiver holds up no one
else, and a tenant's webhooks are limited by its plan."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from control_plane.webhook.ssrf import is_public
from control_plane.webhook.transport import WebhookClient
from tests.api.raw_server import Connection, RawServer, answer, drip, flood, hang
from tests.api.world import Api, World, build_world, run_async
from tests.support import PASSWORD

PUBLIC = "93.184.216.34"  # stands for a host on the internet; tests reach it on loopback
INTERNET = "127.0.0.3"  # where that host listens in tests (Linux routes 127/8 to lo)


def _wait(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)  # polls stay under the free plan's API rate
    raise AssertionError("timed out waiting")


def _hook(api: Api, token: str, url: str) -> dict[str, Any]:
    return api.created("/api/v1/webhooks", token, {"url": url, "events": ["user.created"]})


def _add_user(api: Api, token: str, email: str) -> None:
    body = {"email": email, "password": PASSWORD, "role": "viewer"}
    api.created("/api/v1/users", token, body)


def _deliveries(api: Api, token: str, hook_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/webhooks/{hook_id}/deliveries", token)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _unthrottled(world: World, **limits: float | None) -> None:
    """Set acme's limits, its API rate lifted (the tests call fast)."""
    body = {"limits": {"api_rps": None, **limits}}
    response = world.api.call(
        "PUT", f"/api/v1/tenants/{world.acme.id}/limits", world.admin_token, json=body
    )
    assert response.status_code == 200, response.text


def _attempted(api: Api, token: str, hook_id: str) -> list[dict[str, Any]]:
    return [d for d in _deliveries(api, token, hook_id) if d["attempts"] >= 1]


def _servers_on_one_port(internal: Callable[[Connection], None]) -> tuple[RawServer, RawServer]:
    """A receiver inside (127.0.0.1) and one "on the internet" (INTERNET), same port."""
    inside = RawServer(internal)
    return inside, RawServer(answer(204), host=INTERNET, port=inside.port)


# --- addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("10.0.0.1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:0:a00:1", False),  # IPv4-translated (SIIT)
        ("::7f00:1", False),  # IPv4-compatible (deprecated)
        ("64:ff9b::7f00:1", False),  # NAT64 well-known prefix, to 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # ... to the cloud metadata service
        ("64:ff9b::808:808", True),  # ... to 8.8.8.8
        ("64:ff9b:1:a00:0:100::", False),  # NAT64 local-use /48, to 10.0.0.1
        ("64:ff9b:1::a00:1", False),  # the same prefix used as a /96
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:1::1", False),  # 6to4 of 192.168.0.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f7f7:fbfb", True),  # Teredo, client 8.8.4.4
        ("fe80::1%eth0", False),
    ],
)
def test_ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address(
    address: str, public: bool
) -> None:
    assert is_public(address) is public


def test_webhooks_to_translated_private_addresses_are_refused(
    make_client: Callable[..., Api],
) -> None:
    api = make_client(webhook_allowed_hosts=[])
    world = build_world(api)
    token = world.acme["owner"].token
    hosts = [
        "[64:ff9b::7f00:1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a00:1::1]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "[::7f00:1]",
        "[::ffff:0:a00:1]",
    ]
    for host in hosts:
        body = {"url": f"http://{host}/hook", "events": ["*"]}
        response = api.post("/api/v1/webhooks", token, json=body)
        assert response.status_code == 422, (host, response.text)
        assert response.json()["field"] == "url" and "non-public" in response.json()["detail"]
    assert api.get("/api/v1/webhooks", token).json()["items"] == []


# --- DNS rebinding -----------------------------------------------------------------


class _Rebinding:
    """``socket.getaddrinfo`` for one name that answers PUBLIC the first ``honest`` times
    and 127.0.0.1 after; other names resolve as usual."""

    def __init__(self, name: str, honest: int) -> None:
        self.name, self.honest, self.lookups = name, honest, 0
        self._real = socket.getaddrinfo
        self._lock = threading.Lock()

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
        if name != self.name:
            return self._real(host, port, *args, **kwargs)
        with self._lock:
            self.lookups += 1
            address = PUBLIC if self.lookups <= self.honest else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]


def _route_public_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections to PUBLIC reach INTERNET instead: the tests' stand-in for the internet."""
    real = anyio.connect_tcp

    async def connect_tcp(remote_host: Any, remote_port: int, **kwargs: Any) -> Any:
        host = INTERNET if remote_host == PUBLIC else remote_host
        return await real(host, remote_port, **kwargs)

    monkeypatch.setattr(anyio, "connect_tcp", connect_tcp)


def test_a_name_that_rebinds_after_the_check_is_not_followed_inside(
    make_client: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolves to a public address when the webhook is created and when its
    delivery is checked, then to loopback: the delivery goes to the public address."""
    dns = _Rebinding("rebind.example", honest=2)
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    _route_public_to_loopback(monkeypatch)
    api = make_client(webhook_allowed_hosts=[])
    world = build_world(api)
    token = world.acme["owner"].token
    inside, outside = _servers_on_one_port(answer(204))
    with inside, outside:
        hook = _hook(api, token, inside.url("rebind.example"))
        _add_user(api, token, "new@acme.example.com")
        log = _wait(lambda: _attempted(api, token, hook["id"]))
        assert inside.requests == []  # nothing reached the address inside
        assert log[0]["status"] == "delivered", log
        assert outside.requests[0]["host"] == f"rebind.example:{inside.port}"
        assert dns.lookups == 2  # one at creation, one for the attempt


class _Internet(httpcore.AsyncNetworkBackend):
    """Stands in for the internet below the webhook client: PUBLIC leads to INTERNET,
    and every connection made is recorded."""

    def __init__(self) -> None:
        self.connected: list[str] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        return await self._inner.connect_tcp(
            INTERNET if host == PUBLIC else host, port, timeout=timeout
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _answers(*answers: list[str]) -> tuple[Callable[[str, int], Any], list[str]]:
    """A resolver giving these answers in turn; and the names it was asked for."""
    asked: list[str] = []
    left = list(answers)

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return left.pop(0)

    return resolve, asked


def test_each_connection_resolves_once_and_connects_to_what_it_vetted() -> None:
    resolver, asked = _answers([PUBLIC], ["127.0.0.1"])
    internet = _Internet()
    inside, outside = _servers_on_one_port(answer(204))

    async def two_attempts() -> list[Any]:
        client = WebhookClient(allowed_hosts=[], timeout_s=5, resolver=resolver, network=internet)
        url = f"http://rebind.example:{inside.port}/hook"
        try:
            return [await client.post(url, "{}", {}) for _ in range(2)]
        finally:
            await client.aclose()

    with inside, outside:
        first, second = asyncio.run(two_attempts())
    assert first.ok and outside.requests[0]["host"] == f"rebind.example:{inside.port}"
    assert not second.ok and "non-public addresses 127.0.0.1" in (second.error or "")
    assert asked == ["rebind.example"] * 2
    assert internet.connected == [PUBLIC]  # never 127.0.0.1
    assert inside.requests == [] and inside.connections == 0


# --- TLS keeps the name ------------------------------------------------------------


def _ca_and_server_context(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA the client trusts, and a server context with its cert for ``name``."""
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("test ca", ca_key, "test ca", ca_key, True)
    leaf = cert(name, key, "test ca", ca_key, False)
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem) + ca_cert.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=ca_cert.public_bytes(pem).decode())
    return client, server


def test_tls_is_verified_for_the_name_in_the_url(tmp_path: Path) -> None:
    trust, server_context = _ca_and_server_context(tmp_path, "hooks.test")
    resolver, _ = _answers([PUBLIC], [PUBLIC])

    async def attempts(port: int) -> list[Any]:
        client = WebhookClient(
            allowed_hosts=[], timeout_s=5, resolver=resolver, network=_Internet(), verify=trust
        )
        try:
            good = await client.post(f"https://hooks.test:{port}/hook", "{}", {})
            wrong = await client.post(f"https://other.test:{port}/hook", "{}", {})
            return [good, wrong]
        finally:
            await client.aclose()

    with RawServer(answer(204), host=INTERNET, tls=server_context) as server:
        good, wrong = asyncio.run(attempts(server.port))
    assert good.ok, good
    assert server.server_names[0] == "hooks.test"  # SNI
    assert server.requests[0]["host"] == f"hooks.test:{server.port}"
    assert not wrong.ok and "certificate" in (wrong.error or "").lower()
    assert len(server.requests) == 1  # nothing was sent over the unverified connection


# --- deadlines, answers, independence ----------------------------------------------


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(
    make_client: Callable[..., Api],
) -> None:
    api = make_client(webhook_timeout_seconds=1.0, webhook_max_attempts=1)
    world = build_world(api)
    token = world.acme["owner"].token
    with RawServer(drip(0.05)) as slow:
        hook = _hook(api, token, slow.url())
        _add_user(api, token, "new@acme.example.com")
        log = _wait(lambda: _attempted(api, token, hook["id"]))
    assert log[0]["status"] == "failed"
    assert log[0]["last_error"] == "timed out after 1 s"


def test_a_large_answer_is_read_only_up_to_a_cap(make_client: Callable[..., Api]) -> None:
    api = make_client()
    world = build_world(api)
    token = world.acme["owner"].token
    total = 64 * 1024 * 1024
    with RawServer(flood(total)) as loud:
        hook = _hook(api, token, loud.url())
        _add_user(api, token, "new@acme.example.com")
        log = _wait(lambda: _attempted(api, token, hook["id"]))
        sent = loud.sent
    assert log[0]["status"] == "delivered"
    # the client stopped reading: what was sent is bounded by socket buffers, not 64 MiB
    assert sent < total // 4


def test_a_receiver_that_never_answers_does_not_hold_up_other_tenants(
    make_client: Callable[..., Api],
) -> None:
    api = make_client(webhook_timeout_seconds=60)
    world = build_world(api)
    acme, globex = world.acme["owner"].token, world.globex["owner"].token
    with RawServer(hang) as stuck, RawServer(answer(204)) as fine:
        _hook(api, globex, stuck.url())
        hook = _hook(api, acme, fine.url())
        _add_user(api, globex, "new@globex.example.com")
        _wait(lambda: stuck.requests)  # globex's delivery is now waiting on its receiver
        _add_user(api, acme, "new@acme.example.com")
        log = _wait(lambda: _attempted(api, acme, hook["id"]))
        assert log[0]["status"] == "delivered"
        assert len(fine.requests) == 1


def test_deliveries_to_one_webhook_are_capped(make_client: Callable[..., Api]) -> None:
    api = make_client(webhook_concurrency_per_webhook=1)
    world = build_world(api)
    token = world.acme["owner"].token
    at_once, most = [0], [0]
    lock = threading.Lock()

    def slow_answer(conn: Connection) -> None:
        conn.read_request()
        with lock:
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
        time.sleep(0.3)
        with lock:
            at_once[0] -= 1
        conn.send(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    with RawServer(slow_answer) as receiver:
        hook = _hook(api, token, receiver.url())
        for n in range(3):
            _add_user(api, token, f"user{n}@acme.example.com")
        _wait(lambda: len(_attempted(api, token, hook["id"])) == 3)
    assert len(receiver.requests) == 3
    assert most[0] == 1


# --- how many webhooks a tenant may have --------------------------------------------


def test_webhooks_per_tenant_are_limited_by_the_plan(world: World) -> None:
    api = world.api
    _unthrottled(world)
    acme, globex = world.acme["owner"].token, world.globex["owner"].token
    hooks = [_hook(api, acme, f"https://hooks.example.com/{n}") for n in range(5)]  # free: 5
    refused = api.post(
        "/api/v1/webhooks", acme, json={"url": "https://hooks.example.com/6", "events": ["*"]}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "plan_limit_reached"
    assert "max_webhooks" in refused.json()["detail"]
    _hook(api, globex, "https://hooks.example.com/g")  # another tenant's count is its own
    assert api.delete(f"/api/v1/webhooks/{hooks[0]['id']}", acme).status_code == 204
    _hook(api, acme, "https://hooks.example.com/again")


def test_parallel_creates_never_exceed_max_webhooks(world: World) -> None:
    api = world.api
    _unthrottled(world, max_webhooks=3)
    token = world.acme["owner"].token

    async def create(n: int) -> int:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.post(
                "/api/v1/webhooks",
                headers={"Authorization": f"Bearer {token}"},
                json={"url": f"https://hooks.example.com/{n}", "events": ["*"]},
            )
            return response.status_code

    async def race() -> list[int]:
        return list(await asyncio.gather(*(create(n) for n in range(12))))

    statuses: list[int] = run_async(api, race)
    assert sorted(statuses) == [201] * 3 + [403] * 9
    assert len(api.get("/api/v1/webhooks", token).json()["items"]) == 3
