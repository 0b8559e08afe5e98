from __future__ import annotations

import asyncio

import pytest

from control_plane.errors import ValidationFailed
from control_plane.kit.counters import LocalCounters
from control_plane.kit.pagination import decode_cursor, encode_cursor


def test_local_counters_count_within_a_window_and_clear() -> None:
    async def run() -> None:
        counters = LocalCounters()
        assert await counters.peek("a") == (0, 0)
        assert (await counters.hit("a", 60))[0] == 1
        count, reset_in = await counters.hit("a", 60)
        assert count == 2
        assert 0 < reset_in <= 60
        await counters.clear("a")
        assert (await counters.peek("a"))[0] == 0

    asyncio.run(run())


def test_local_counters_release_one_event_never_below_zero() -> None:
    async def run() -> None:
        counters = LocalCounters()
        await counters.hit("a", 60)
        await counters.hit("a", 60)
        await counters.release("a")
        assert (await counters.peek("a"))[0] == 1
        await counters.release("a")
        await counters.release("a")
        assert await counters.peek("a") == (0, 0)
        assert (await counters.hit("a", 60))[0] == 1

    asyncio.run(run())


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor("usr_01abc")) == "usr_01abc"
    for bad in ("%%%", encode_cursor("x" * 80), ""):
        with pytest.raises(ValidationFailed):
            decode_cursor(bad)
