"""One contract, two backends: in-process and Redis pass the same tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from control_plane.kit.redis import connect
from control_plane.quota.backend import LocalQuotaBackend, QuotaBackend, RedisQuotaBackend


@pytest.fixture(params=["local", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return str(request.param)


@asynccontextmanager
async def backend(kind: str, namespace: str) -> AsyncIterator[QuotaBackend]:
    if kind == "local":
        yield LocalQuotaBackend()
        return
    redis = connect(os.environ["ATRIUM_TEST_REDIS_URL"])
    try:
        yield RedisQuotaBackend(redis, namespace=namespace)
    finally:
        await redis.aclose()


def _ns() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_an_unseeded_counter_asks_to_be_seeded(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            assert (await quotas.charge("c", 1, 10, dedupe=None, ttl_s=60)).status == "needs_seed"
            await quotas.seed("c", 7, ttl_s=60)
            await quotas.seed("c", 0, ttl_s=60)  # a second seed never overwrites
            assert (await quotas.charge("c", 1, 10, dedupe=None, ttl_s=60)).used == 8
            assert await quotas.used("c") == 8

    asyncio.run(run())


def test_parallel_chargers_never_exceed_the_limit(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            await quotas.seed("c", 0, ttl_s=60)
            results = await asyncio.gather(
                *(quotas.charge("c", 1, 137, dedupe=None, ttl_s=60) for _ in range(300))
            )
            assert sum(r.status == "charged" for r in results) == 137
            assert sum(r.status == "exceeded" for r in results) == 163
            assert await quotas.used("c") == 137

    asyncio.run(run())


def test_a_source_is_charged_once(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            await quotas.seed("c", 0, ttl_s=60)
            first = await quotas.charge("c", 5, 100, dedupe="req-1", ttl_s=60)
            again = await quotas.charge("c", 5, 100, dedupe="req-1", ttl_s=60)
            assert (first.status, again.status) == ("charged", "duplicate")
            assert await quotas.used("c") == 5

    asyncio.run(run())


def test_leases_cap_concurrency_and_expire(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            assert await quotas.acquire("jobs", "a", 2, lease_s=1.0)
            assert await quotas.acquire("jobs", "b", 2, lease_s=5)
            assert not await quotas.acquire("jobs", "c", 2, lease_s=5)
            assert await quotas.acquire("jobs", "a", 2, lease_s=1.0)  # renewing is allowed
            assert await quotas.holders("jobs") == 2
            await quotas.release("jobs", "b")
            assert await quotas.acquire("jobs", "c", 2, lease_s=5)
            await asyncio.sleep(1.1)  # "a" was never renewed again: its slot frees itself
            assert await quotas.holders("jobs") == 1
            assert await quotas.acquire("jobs", "d", 2, lease_s=5)

    asyncio.run(run())


def test_token_bucket_allows_burst_then_rate(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            taken = [await quotas.take("b", rate=20, burst=5) for _ in range(8)]
            assert [t.allowed for t in taken] == [True] * 5 + [False] * 3
            assert 0 < taken[-1].retry_after <= 0.05 + 1e-6
            await asyncio.sleep(0.11)  # about two tokens back (three if the machine dawdles)
            again = [await quotas.take("b", rate=20, burst=5) for _ in range(5)]
            assert 2 <= sum(t.allowed for t in again) <= 3

    asyncio.run(run())


def test_parallel_reservations_never_exceed_the_limit(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            since = await quotas.epoch("s")
            results = await asyncio.gather(
                *(
                    quotas.reserve("s", f"h{i}", 10, 1000, base=370, since=since, lease_s=60)
                    for i in range(100)
                )
            )
            assert sum(r.status == "reserved" for r in results) == 63  # (1000 - 370) // 10
            assert sum(r.status == "exceeded" for r in results) == 37
            assert await quotas.reserved("s") == 630

    asyncio.run(run())


def test_a_reservation_grows_within_the_limit_and_may_always_shrink(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            since = await quotas.epoch("s")

            async def hold(holder: str, amount: int, limit: int = 100) -> tuple[str, int]:
                got = await quotas.reserve(
                    "s", holder, amount, limit, base=10, since=since, lease_s=60
                )
                return got.status, got.used

            assert await hold("a", 50) == ("reserved", 10)
            assert await hold("a", 80) == ("reserved", 10)  # its own amount is replaced
            assert await hold("b", 20) == ("exceeded", 90)
            assert await hold("b", 10) == ("reserved", 90)
            assert await hold("a", 70, limit=50) == ("reserved", 20)  # shrinking: never refused
            assert await hold("a", 71, limit=50) == ("exceeded", 20)
            assert await quotas.reserved("s") == 80

    asyncio.run(run())


def test_a_reservation_that_goes_away_makes_older_bases_stale(kind: str) -> None:
    """Bytes move from a reservation into the database when the upload commits: a caller
    whose base was read before that must read it again, or it would miss them."""

    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            before = await quotas.epoch("s")
            await quotas.reserve("s", "a", 60, 100, base=0, since=before, lease_s=60)
            await quotas.unreserve("s", "a")  # committed: now in the database's 60
            stale = await quotas.reserve("s", "b", 50, 100, base=0, since=before, lease_s=60)
            assert stale.status == "stale"
            after = await quotas.epoch("s")
            again = await quotas.reserve("s", "b", 50, 100, base=60, since=after, lease_s=60)
            assert (again.status, again.used) == ("exceeded", 60)
            await quotas.unreserve("s", "nobody")  # unknown holders change nothing
            assert await quotas.epoch("s") == after

    asyncio.run(run())


def test_an_unrenewed_reservation_expires_and_makes_bases_stale(kind: str) -> None:
    async def run() -> None:
        async with backend(kind, _ns()) as quotas:
            since = await quotas.epoch("s")
            await quotas.reserve("s", "crashed", 60, 100, base=0, since=since, lease_s=0.3)
            await quotas.reserve("s", "alive", 30, 100, base=0, since=since, lease_s=0.3)
            assert await quotas.renew("s", "alive", lease_s=60)
            assert not await quotas.renew("s", "never-held", lease_s=60)
            await asyncio.sleep(0.4)
            assert await quotas.reserved("s") == 30  # the crashed holder's lease ran out
            late = await quotas.reserve("s", "c", 10, 100, base=0, since=since, lease_s=60)
            assert late.status == "stale"  # it may have committed before it died

    asyncio.run(run())


# --- across processes (Redis only) -------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from control_plane.kit.redis import connect
    from control_plane.quota.backend import RedisQuotaBackend

    async def main(url, ns, mode, n):
        redis = connect(url)
        quotas = RedisQuotaBackend(redis, namespace=ns)
        if mode == "charge":
            results = [await quotas.charge("c", 1, 137, dedupe=None, ttl_s=60) for _ in range(n)]
            print(sum(r.status == "charged" for r in results), flush=True)
        elif mode == "take":  # n: the wall-clock second both children start at
            await asyncio.sleep(max(0.0, n - time.time()))
            allowed = 0
            while time.time() < n + 1.0:
                allowed += (await quotas.take("b", rate=50, burst=50)).allowed
            print(allowed, flush=True)
        else:
            assert await quotas.acquire("jobs", "doomed", 1, lease_s=3.0)
            print("held", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


def _children(
    redis_url: str, ns: str, mode: str, count: int, n: int = 0
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, redis_url, ns, mode, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


@pytest.mark.slow
def test_processes_charging_together_stop_exactly_at_the_limit(redis_url: str) -> None:
    ns = _ns()

    async def seed() -> None:
        async with backend("redis", ns) as quotas:
            await quotas.seed("c", 0, ttl_s=60)

    asyncio.run(seed())
    children = _children(redis_url, ns, "charge", 6, n=40)
    charged = [int(c.communicate(timeout=60)[0]) for c in children]
    assert sum(charged) == 137  # 240 attempts from 6 processes, not one over


@pytest.mark.slow
def test_two_processes_share_one_bucket(redis_url: str) -> None:
    start_at = int(time.time()) + 3  # after both have started, whatever the machine's load
    children = _children(redis_url, _ns(), "take", 2, n=start_at)
    allowed = sum(int(c.communicate(timeout=60)[0]) for c in children)
    # one bucket: a burst of 50 plus 50/s for about a second, not twice that
    assert 80 <= allowed <= 115


@pytest.mark.slow
def test_a_killed_lease_holder_frees_its_slot_after_expiry(redis_url: str) -> None:
    ns = _ns()
    (child,) = _children(redis_url, ns, "hold", 1)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)

    async def try_take() -> bool:
        async with backend("redis", ns) as quotas:
            return await quotas.acquire("jobs", "next", 1, lease_s=5)

    assert not asyncio.run(try_take())  # still held by the dead process's lease
    time.sleep(3.1)
    assert asyncio.run(try_take())
