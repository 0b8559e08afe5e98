"""Per-user budgets for guessing a secret (MFA codes, the current password).

A guess is counted before it is checked, so parallel guesses cannot all slip in
between a check and an increment: past the limit, the secret is not even looked at.
"""

from __future__ import annotations

from control_plane.config import Settings
from control_plane.errors import RateLimited
from control_plane.kit.counters import CounterStore


class Guesses:
    def __init__(self, counters: CounterStore, *, kind: str, limit: int, window_s: int) -> None:
        self._counters = counters
        self._kind, self._limit, self._window = kind, limit, window_s

    @classmethod
    def totp(cls, settings: Settings, counters: CounterStore) -> Guesses:
        return cls(
            counters,
            kind="totp",
            limit=settings.totp_max_failures,
            window_s=settings.totp_failure_window_seconds,
        )

    @classmethod
    def password(cls, settings: Settings, counters: CounterStore) -> Guesses:
        return cls(
            counters,
            kind="reauth",
            limit=settings.login_max_failures_per_account,
            window_s=settings.login_failure_window_seconds,
        )

    def _key(self, user_id: str) -> str:
        return f"guess:{self._kind}:{user_id}"

    async def take(self, user_id: str) -> None:
        """Count one guess; RateLimited once the user's budget for the window is spent."""
        count, reset_in = await self._counters.hit(self._key(user_id), self._window)
        if count > self._limit:
            raise RateLimited(
                "too many wrong codes or passwords; try again later",
                retry_after=reset_in,
                headers={
                    "RateLimit-Limit": str(self._limit),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(reset_in),
                },
            )

    async def give_back(self, user_id: str) -> None:
        """A right guess is no failure: it does not count (the wrong ones still do)."""
        await self._counters.release(self._key(user_id))
