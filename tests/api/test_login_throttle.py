"""Login throttling as an attacker meets it: guesses are counted before they are
verified, per (account, client address) and per address (an IPv6 /64), through a
trusted proxy only when one is configured, with password hashing capped."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable

import anyio.to_thread
import httpx
import pytest
from redis.asyncio import Redis

from control_plane.kit.counters import RedisCounters
from tests.api.world import Api, World, build_world, run_async
from tests.support import ADMIN_EMAIL, PASSWORD

TOKEN = "/api/v1/auth/token"
WRONG = "wrong password!!"
Attempt = tuple[str, str, str, dict[str, str]]  # email, password, peer address, headers


async def _post(api: Api, email: str, password: str, peer: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=api.client.app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        data = {"username": email, "password": password}
        response = await client.post(TOKEN, data=data, headers=headers)
        return response.status_code


def logins(api: Api, attempts: list[Attempt]) -> list[int]:
    """Send every attempt at once (asyncio.gather on the app's own loop); their statuses."""

    async def run() -> list[int]:
        return list(await asyncio.gather(*(_post(api, *attempt) for attempt in attempts)))

    statuses: list[int] = run_async(api, run)
    return statuses


def login(api: Api, email: str, password: str, peer: str, **headers: str) -> int:
    return logins(api, [(email, password, peer, headers)])[0]


@pytest.fixture(params=["local", "redis"])
def throttled(request: pytest.FixtureRequest, make_client: Callable[..., Api]) -> Api:
    """The app with in-process counters, or with Redis counters shared by processes."""
    if request.param == "local":
        return make_client()
    redis_url: str = request.getfixturevalue("redis_url")
    return make_client(redis_url=redis_url, redis_namespace=f"t{uuid.uuid4().hex[:12]}")


def test_parallel_guesses_get_at_most_the_limit_of_tries(throttled: Api) -> None:
    world = build_world(throttled)
    email = world.acme["developer"].email
    statuses = Counter(logins(throttled, [(email, WRONG, "203.0.113.7", {})] * 50))
    assert statuses[401] <= 5
    assert statuses[401] + statuses[429] == 50
    # the attacker's address waits, even with the right password ...
    assert login(throttled, email, PASSWORD, "203.0.113.7") == 429
    # ... and the real user, elsewhere, signs in
    assert login(throttled, email, PASSWORD, "198.51.100.20") == 200


def test_an_attacker_elsewhere_cannot_lock_the_user_out(world: World) -> None:
    api, email = world.api, world.acme["viewer"].email
    for _ in range(20):
        login(api, email, WRONG, "203.0.113.7")
    assert login(api, email, PASSWORD, "203.0.113.7") == 429
    assert login(api, email, PASSWORD, "198.51.100.20") == 200
    assert login(api, email, PASSWORD, "2001:db8:aa::1") == 200


def test_ipv6_clients_are_counted_per_64(make_client: Callable[..., Api]) -> None:
    api = make_client(login_max_failures_per_address=3, login_max_failures_per_account=100)
    for n in range(3):  # three addresses of one /64: one client
        assert login(api, f"user{n}@example.com", WRONG, f"2001:db8:1:2::{n + 1}") == 401
    assert login(api, ADMIN_EMAIL, PASSWORD, "2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
    assert login(api, ADMIN_EMAIL, PASSWORD, "2001:db8:1:3::1") == 200  # the next /64


def test_forwarded_for_is_ignored_from_an_untrusted_peer(make_client: Callable[..., Api]) -> None:
    api = make_client(login_max_failures_per_address=3, login_max_failures_per_account=100)
    for n in range(3):  # a fresh X-Forwarded-For each time buys no fresh counter
        forged = {"X-Forwarded-For": f"192.0.2.{n}"}
        assert logins(api, [(f"user{n}@example.com", WRONG, "203.0.113.7", forged)]) == [401]
    forged = {"X-Forwarded-For": "192.0.2.99"}
    assert logins(api, [(ADMIN_EMAIL, PASSWORD, "203.0.113.7", forged)]) == [429]


def test_a_trusted_proxy_names_the_client(make_client: Callable[..., Api]) -> None:
    api = make_client(
        login_max_failures_per_address=3,
        login_max_failures_per_account=100,
        trusted_proxies=["10.0.0.0/8"],
    )
    proxy = "10.0.0.5"
    for n in range(3):  # the client forges the left part; the proxy appends what it saw
        forwarded = {"X-Forwarded-For": f"192.0.2.{n}, 203.0.113.7, 10.1.1.1"}
        assert logins(api, [(f"user{n}@example.com", WRONG, proxy, forwarded)]) == [401]
    blocked = {"X-Forwarded-For": "192.0.2.200, 203.0.113.7"}
    assert logins(api, [(ADMIN_EMAIL, PASSWORD, proxy, blocked)]) == [429]
    # another client behind the same proxy is not throttled with the first
    assert login(api, ADMIN_EMAIL, PASSWORD, proxy, **{"X-Forwarded-For": "198.51.100.9"}) == 200
    events = api.get(
        "/api/v1/audit-events", api.token(ADMIN_EMAIL), params={"action": "auth.login"}
    ).json()["items"]
    assert {e["client_address"] for e in events if e["outcome"] == "failure"} == {"203.0.113.7"}


def test_password_hashing_beyond_the_cap_answers_503(make_client: Callable[..., Api]) -> None:
    api = make_client(password_hash_concurrency=1, password_hash_queue=0)
    passwords = api.services.passwords
    entered, release = threading.Event(), threading.Event()
    verify = passwords._verify

    def slow_verify(stored: str, password: str) -> bool:
        entered.set()
        release.wait(30)
        return bool(verify(stored, password))

    passwords._verify = slow_verify

    async def run() -> tuple[int, httpx.Response]:
        first = asyncio.create_task(_post(api, ADMIN_EMAIL, PASSWORD, "198.51.100.1", {}))
        assert await anyio.to_thread.run_sync(entered.wait, 30)  # the first holds the slot
        transport = httpx.ASGITransport(app=api.client.app, client=("198.51.100.2", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            second = await client.post(TOKEN, data={"username": ADMIN_EMAIL, "password": WRONG})
        release.set()
        return await first, second

    first, second = run_async(api, run)
    assert first == 200
    assert second.status_code == 503
    assert second.json()["code"] == "overloaded"
    assert int(second.headers["retry-after"]) >= 1
    # the refused attempt was no guess: it is not counted against that client
    passwords._verify = verify
    for _ in range(5):
        assert login(api, ADMIN_EMAIL, WRONG, "198.51.100.2") == 401


def test_redis_counters_release_one_event_never_below_zero(redis_url: str) -> None:
    async def run() -> list[int]:
        redis = Redis.from_url(redis_url)
        counters = RedisCounters(redis, namespace=f"t{uuid.uuid4().hex[:12]}")
        try:
            await counters.hit("a", 60)
            await counters.hit("a", 60)
            await counters.release("a")
            seen = [(await counters.peek("a"))[0]]
            await counters.release("a")
            await counters.release("a")
            seen.append((await counters.peek("a"))[0])
            seen.append((await counters.hit("a", 60))[0])
            return seen
        finally:
            await redis.aclose()

    assert asyncio.run(run()) == [1, 0, 1]
