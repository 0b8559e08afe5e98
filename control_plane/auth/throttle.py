"""Login throttling per account and per client address."""

from __future__ import annotations

from control_plane.config import Settings
from control_plane.errors import RateLimited
from control_plane.kit.counters import CounterStore


class LoginThrottle:
    def __init__(self, settings: Settings, counters: CounterStore) -> None:
        self._counters = counters
        self._window = settings.login_failure_window_seconds
        self._limits = {
            "acct": settings.login_max_failures_per_account,
            "addr": settings.login_max_failures_per_address,
        }

    def _keys(self, email: str, address: str | None) -> dict[str, str]:
        return {"acct": f"login:acct:{email}", "addr": f"login:addr:{address or 'unknown'}"}

    async def blocked_for(self, email: str, address: str | None) -> int:
        """Seconds the caller must wait, 0 when a login attempt is allowed."""
        wait = 0
        for kind, key in self._keys(email, address).items():
            count, reset_in = await self._counters.peek(key)
            if count >= self._limits[kind]:
                wait = max(wait, reset_in)
        return wait

    async def check(self, email: str, address: str | None) -> None:
        wait = await self.blocked_for(email, address)
        if wait:
            raise RateLimited(
                "too many failed logins; try again later",
                retry_after=wait,
                headers={
                    "RateLimit-Limit": str(self._limits["acct"]),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(wait),
                },
            )

    async def failed(self, email: str, address: str | None) -> None:
        for key in self._keys(email, address).values():
            await self._counters.hit(key, self._window)

    async def succeeded(self, email: str) -> None:
        await self._counters.clear(self._keys(email, None)["acct"])
