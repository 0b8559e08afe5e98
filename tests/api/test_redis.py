"""With Redis configured, processes share throttling and hear each other's revocations."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from control_plane.kit.counters import RedisCounters
from tests.api.world import Api, build_world


@pytest.fixture
def two_processes(make_client: Callable[..., Api], redis_url: str) -> tuple[Api, Api]:
    """Two control-plane instances on one database and one Redis, as two workers would be."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    first = make_client(redis_url=redis_url, redis_namespace=namespace)
    second = make_client(redis_url=redis_url, redis_namespace=namespace)
    return first, second


def test_redis_counters_count_and_expire(redis_url: str) -> None:
    async def run() -> None:
        redis = Redis.from_url(redis_url)
        counters = RedisCounters(redis, namespace=f"t{uuid.uuid4().hex[:12]}")
        try:
            assert await counters.peek("k") == (0, 0)
            assert (await counters.hit("k", 1))[0] == 1
            count, reset_in = await counters.hit("k", 1)
            assert count == 2
            assert reset_in == 1
            await asyncio.sleep(1.1)
            assert await counters.peek("k") == (0, 0)
            await counters.hit("k", 60)
            await counters.clear("k")
            assert (await counters.peek("k"))[0] == 0
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_revocation_in_one_process_is_heard_by_the_other(two_processes: tuple[Api, Api]) -> None:
    first, second = two_processes
    world = build_world(first)
    token = world.acme["developer"].token
    created = first.new_key(token, ["inference"])
    assert second.get("/api/v1/auth/me", created["key"]).status_code == 200  # cached there
    assert first.delete(f"/api/v1/api-keys/{created['id']}", token).status_code == 204
    deadline = time.monotonic() + 2
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = second.get("/api/v1/auth/me", created["key"]).status_code
    assert status == 401


def test_login_throttling_is_shared(two_processes: tuple[Api, Api]) -> None:
    first, second = two_processes
    world = build_world(first)
    email = world.acme["viewer"].email
    for api in (first, second, first, second, first):
        assert api.login(email, "wrong password!!").status_code == 401
    assert second.login(email).status_code == 429
