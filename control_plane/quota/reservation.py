"""Amounts held against a counted quota (stored bytes, deployments, dedicated replicas)
while the work that will use them runs, so parallel requests cannot together pass it.

What counts is what the database holds (the ``base``, read fresh by each request) plus
every live reservation. A request reserves before the work (an upload grows its hold as
the bytes stream in), and releases once its transaction has committed (the amount is in
the database now) or rolled back (it never will be). A reservation is a lease: renewed
while its request lives, gone within ``lease_s`` of a crash. Whenever one goes away, the
backend makes every older base ``stale``, so no request misses what moved into the
database after it read its base (see ``QuotaBackend.reserve``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from control_plane.quota.backend import QuotaBackend

log = logging.getLogger(__name__)
Base = Callable[[], Awaitable[int]]
LEASE_S = 60.0
_STALE_TRIES = 20
_MAX_HOLD_S = 24 * 3600.0


class Reservation:
    """One request's hold on one counted quota; ``cap`` None: unlimited (nothing held)."""

    def __init__(
        self,
        backend: QuotaBackend,
        key: str,
        *,
        cap: int | None,
        base: Base,
        lease_s: float = LEASE_S,
    ) -> None:
        self._backend, self._key, self.cap = backend, key, cap
        self._read_base, self._lease = base, lease_s
        self.holder = uuid.uuid4().hex
        self.amount = 0  # held now
        self.used = 0  # the database and the other reservations, at the last try
        self._since: int | None = None
        self._base = 0
        self._renewer: asyncio.Task[None] | None = None
        self._released = False

    @property
    def left(self) -> int:
        """What was left for this request at the last try (no cap: a very large number)."""
        return 2**62 if self.cap is None else max(0, self.cap - self.used)

    async def hold(self, amount: int) -> bool:
        """Hold ``amount`` in all, more or less than before; False when it does not fit
        (what was held stays held until ``release``)."""
        if self.cap is None or self._released:
            self.amount = amount
            return self.cap is None
        for _ in range(_STALE_TRIES):
            if self._since is None:
                self._since = await self._backend.epoch(self._key)
                self._base = await self._read_base()
            got = await self._backend.reserve(
                self._key,
                self.holder,
                amount,
                self.cap,
                base=self._base,
                since=self._since,
                lease_s=self._lease,
            )
            if got.status == "stale":
                self._since = None
                continue
            self.used = got.used
            if got.status == "exceeded":
                return False
            self.amount = amount
            self._keep_alive()
            return True
        return False  # reservations kept coming and going: refuse rather than guess

    async def cover(self, amount: int, *, ahead: int = 0) -> bool:
        """Hold at least ``amount``, and up to ``ahead`` more while that fits (fewer calls
        for a stream that keeps growing)."""
        if amount <= self.amount:
            return True
        if ahead and amount + ahead <= self.left and await self.hold(amount + ahead):
            return True
        return await self.hold(amount)

    async def release(self) -> None:
        """Give back what is held (idempotent): after commit or rollback, or on failure."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self._released or self.cap is None:
            self._released = True
            return
        self._released = True
        await self._backend.unreserve(self._key, self.holder)

    def _keep_alive(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew(), name=f"reservation {self._key}")

    async def _renew(self) -> None:
        deadline = time.monotonic() + _MAX_HOLD_S
        while time.monotonic() < deadline:
            await asyncio.sleep(self._lease / 3)
            try:
                if not await self._backend.renew(self._key, self.holder, lease_s=self._lease):
                    return
            except Exception:  # Redis away for a moment: the lease has time left
                log.warning("could not renew the reservation on %s", self._key, exc_info=True)


def reservation(
    backend: QuotaBackend, tenant_id: str, quota: str, *, cap: int | None, base: Base
) -> Reservation:
    """A new hold of the tenant's ``quota`` (``storage_gb``, ``max_deployments``, …)."""
    return Reservation(backend, f"{tenant_id}:{quota}:held", cap=cap, base=base)
