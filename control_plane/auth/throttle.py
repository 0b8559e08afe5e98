"""Login throttling per (account, client address) and per client address.

An attempt is counted *before* its password is checked (``reserve``), atomically, so
parallel guesses cannot all slip past a check made before any of them failed: at most
the limit of them are ever verified. A failed attempt keeps its count, and so does one
refused here; one that was no guess (over the hashing cap, MFA code still to come)
gives it back; a success clears the (account, address) counter.

There is no account-wide lock: the account's counter is kept per client address, so an
attacker elsewhere makes only their own address wait, never the account's owner. An
address is its IPv6 /64 (one subscriber's network) or its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from control_plane.config import Settings
from control_plane.errors import RateLimited
from control_plane.kit.counters import CounterStore


def address_key(address: str | None) -> str:
    """The unit counted per client: an IPv6 address's /64, an IPv4 address itself."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One counted login attempt: ``succeeded`` or ``release`` it, or let it stand (failed)."""

    throttle: LoginThrottle
    pair: str
    address: str

    async def succeeded(self) -> None:
        await self.throttle.counters.clear(self.pair)
        await self.throttle.counters.release(self.address)

    async def release(self) -> None:
        await self.throttle.counters.release(self.pair)
        await self.throttle.counters.release(self.address)


class LoginThrottle:
    def __init__(self, settings: Settings, counters: CounterStore) -> None:
        self.counters = counters
        self._window = settings.login_failure_window_seconds
        self._pair_limit = settings.login_max_failures_per_account
        self._address_limit = settings.login_max_failures_per_address

    async def reserve(self, email: str, address: str | None) -> Attempt:
        """Count an attempt, or refuse it (429) when either counter is past its limit."""
        where = address_key(address)
        attempt = Attempt(self, f"login:pair:{where}:{email}", f"login:addr:{where}")
        pair, pair_reset = await self.counters.hit(attempt.pair, self._window)
        at_address, address_reset = await self.counters.hit(attempt.address, self._window)
        wait = max(
            pair_reset if pair > self._pair_limit else 0,
            address_reset if at_address > self._address_limit else 0,
        )
        if wait:  # still counted: hammering while refused never frees a slot
            raise RateLimited(
                "too many failed logins from your address; try again later",
                retry_after=wait,
                headers={
                    "RateLimit-Limit": str(self._pair_limit),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(wait),
                },
            )
        return attempt
