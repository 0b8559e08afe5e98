"""Sandboxed work (probes, dataset reads) is bounded process-wide and shared fairly:
one tenant's burst neither takes every slot nor makes another tenant wait behind it."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from control_plane.kit.slots import FairSlots


class _Recorder:
    """Uses slots and remembers who got one when, and how many were held at once."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.granted: list[str] = []
        self.held: Counter[str] = Counter()
        self.most_held = 0
        self.most_held_by: Counter[str] = Counter()

    async def use(self, tenant_id: str, steps: int = 3) -> None:
        async with self.slots.slot(tenant_id):
            self.granted.append(tenant_id)
            self.held[tenant_id] += 1
            self.most_held = max(self.most_held, sum(self.held.values()))
            self.most_held_by[tenant_id] = max(self.most_held_by[tenant_id], self.held[tenant_id])
            for _ in range(steps):
                await asyncio.sleep(0)
            self.held[tenant_id] -= 1

    async def burst(self, *tenants: str) -> None:
        await asyncio.gather(*(self.use(tenant_id) for tenant_id in tenants))


def test_no_more_than_the_limit_run_at_once() -> None:
    async def run() -> _Recorder:
        recorder = _Recorder(FairSlots(limit=2, per_tenant=10))
        await recorder.burst(*"AAAABBBCC")
        return recorder

    recorder = asyncio.run(run())
    assert recorder.most_held == 2
    assert len(recorder.granted) == 9
    assert recorder.slots.in_use == 0


@pytest.mark.parametrize(("limit", "per_tenant"), [(1, 1), (1, 10), (2, 2), (3, 2)])
def test_a_tenant_waiting_goes_before_a_busy_tenants_next(limit: int, per_tenant: int) -> None:
    async def run() -> list[str]:
        recorder = _Recorder(FairSlots(limit=limit, per_tenant=per_tenant))
        await recorder.burst(*"AAAAAAAAAA", "B")  # A queues 10, then B queues 1
        return recorder.granted

    granted = asyncio.run(run())
    first_turns = min(limit, per_tenant)  # what A takes before B has even asked
    assert granted.index("B") == first_turns, granted


def test_no_tenant_holds_more_than_its_share() -> None:
    async def run() -> _Recorder:
        recorder = _Recorder(FairSlots(limit=10, per_tenant=2))
        await recorder.burst(*"AAAAAA", "B")
        return recorder

    recorder = asyncio.run(run())
    assert recorder.most_held_by["A"] == 2
    assert recorder.granted.index("B") == 2  # A at its cap does not hold B back
    assert recorder.slots.in_use == 0


async def _enter(slots: FairSlots, tenant_id: str) -> None:
    async with slots.slot(tenant_id):
        await asyncio.sleep(0)


def test_a_waiter_cancelled_while_waiting_leaves_no_slot_taken() -> None:
    async def run() -> int:
        slots = FairSlots(limit=1, per_tenant=1)
        async with slots.slot("A"):
            waiter = asyncio.create_task(_enter(slots, "B"))
            await asyncio.sleep(0)  # B waits
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        await asyncio.wait_for(_enter(slots, "C"), 1)  # the slot is free again
        return slots.in_use

    assert asyncio.run(run()) == 0


def test_a_waiter_cancelled_as_it_is_granted_gives_the_slot_back() -> None:
    async def run() -> int:
        slots = FairSlots(limit=1, per_tenant=1)
        async with slots.slot("A"):
            waiter = asyncio.create_task(_enter(slots, "B"))
            await asyncio.sleep(0)  # B waits
        waiter.cancel()  # B was granted A's slot on release, and is cancelled before it ran
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.wait_for(_enter(slots, "C"), 1)
        return slots.in_use

    assert asyncio.run(run()) == 0
