"""argon2id password hashing, off the event loop, a few at a time.

Each hash takes tens of MiB and most of a core by design, so a burst of sign-ins
could exhaust the process. At most ``password_hash_concurrency`` run at once, a few
more may wait for a turn, and beyond that the caller is told to retry (503 with
Retry-After) rather than queued without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from control_plane.config import Settings
from control_plane.errors import Overloaded

T = TypeVar("T")


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so timing tells nothing.
        self._dummy = self._hasher.hash("atrium-dummy-password")
        self._slots = asyncio.Semaphore(settings.password_hash_concurrency)
        self._max_waiting = settings.password_hash_queue
        self._waiting = 0

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """False for a missing account too, after the same amount of work."""
        ok = await self._run(self._verify, stored or self._dummy, password)
        return ok and stored is not None

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._slots.locked() and self._waiting >= self._max_waiting:
            raise Overloaded("too many sign-ins at once; try again in a moment", retry_after=1)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            result: T = await anyio.to_thread.run_sync(work, *args)
            return result
        finally:
            self._slots.release()
