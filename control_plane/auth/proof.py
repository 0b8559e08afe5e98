"""Proof that the caller is the account's person, beyond holding a token: MFA codes
(each usable once, throttled per user, failures audited) and re-authentication for
changes to one's own password, email and MFA."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.guesses import Guesses
from control_plane.auth.passwords import Passwords
from control_plane.auth.principal import Principal
from control_plane.auth.totp import SecretBox, matching_step
from control_plane.config import Settings
from control_plane.errors import (
    Forbidden,
    InvalidTotp,
    MfaRequired,
    RateLimited,
    ReauthenticationRequired,
    Unauthorized,
)
from control_plane.kit.counters import CounterStore
from control_plane.kit.repository import PLATFORM
from control_plane.models import User
from control_plane.user.repository import UserRepository


async def own_user(session: AsyncSession, principal: Principal) -> User:
    """The signed-in user's own row (API keys never change accounts)."""
    if principal.kind != "user":
        raise Forbidden("this needs a signed-in user, not an API key")
    user = await UserRepository(session, PLATFORM).get(principal.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return user


@dataclass(frozen=True, slots=True)
class Proof:
    """Checks a person's proof: the current password (re-authentication) and MFA codes,
    each counted against the user's budget of guesses (``deps.ProofDep``)."""

    settings: Settings
    passwords: Passwords
    secrets: SecretBox
    counters: CounterStore

    async def require_reauth(
        self,
        session: AsyncSession,
        principal: Principal,
        user: User,
        *,
        current_password: str | None,
        totp_code: str | None = None,
        code_checked_by_caller: bool = False,
        action: str,
    ) -> None:
        """A recent sign-in (``auth_time`` within ATRIUM_REAUTH_SECONDS), or the current
        password and, with MFA on, a code (unless the caller checks one itself)."""
        max_age = self.settings.reauth_seconds
        if current_password is None:
            if principal.auth_time is not None and time.time() - principal.auth_time <= max_age:
                return
            raise ReauthenticationRequired(
                f"this change needs a sign-in within the last {max_age}s: "
                "send current_password (and totp_code with MFA on), or sign in again",
                max_age=max_age,
            )
        await self._check_password(session, principal, user, current_password, action=action)
        if user.mfa_enabled and not code_checked_by_caller:
            if not totp_code:
                raise MfaRequired("this account has MFA on: send totp_code too")
            await self.check_totp(
                session, user, user.mfa_secret, totp_code, action=action, actor=principal
            )

    async def _check_password(
        self,
        session: AsyncSession,
        principal: Principal,
        user: User,
        password: str,
        *,
        action: str,
    ) -> None:
        guesses = Guesses.password(self.settings, self.counters)
        try:
            await guesses.take(user.id)
        except RateLimited:
            audit_failure(session, user, action=action, reason="throttled", actor=principal)
            raise
        if not await self.passwords.verify(user.password_hash, password):
            audit_failure(session, user, action=action, reason="bad_password", actor=principal)
            raise ReauthenticationRequired(
                "current_password is wrong", max_age=self.settings.reauth_seconds
            )
        await guesses.give_back(user.id)

    async def check_totp(
        self,
        session: AsyncSession,
        user: User,
        sealed: str | None,
        code: str,
        *,
        action: str,
        actor: Principal | None = None,
    ) -> None:
        """A right, unused code, or InvalidTotp; each failure is audited under ``action``."""
        if not await self.verify_totp(session, user, sealed, code, action=action, actor=actor):
            audit_failure(session, user, action=action, reason="bad_totp", actor=actor)
            raise InvalidTotp("the MFA code is wrong, expired or already used")

    async def verify_totp(
        self,
        session: AsyncSession,
        user: User,
        sealed: str | None,
        code: str,
        *,
        action: str,
        actor: Principal | None = None,
    ) -> bool:
        """Whether ``code`` is right and unused. Counted against the user's budget of code
        guesses first: past it (RateLimited, audited) the code is not even looked at."""
        guesses = Guesses.totp(self.settings, self.counters)
        try:
            await guesses.take(user.id)
        except RateLimited:
            audit_failure(session, user, action=action, reason="throttled", actor=actor)
            raise
        if not await self._consume_totp(session, user, sealed, code):
            return False
        await guesses.give_back(user.id)
        return True

    async def _consume_totp(
        self, session: AsyncSession, user: User, sealed: str | None, code: str
    ) -> bool:
        """Accept a code once: its time step must be newer than any accepted before."""
        if sealed is None:
            return False
        step = matching_step(self.secrets.open(sealed), code)
        if step is None or step <= user.totp_last_step:
            return False
        # Conditional update: two requests racing with the same code cannot both win.
        won = await UserRepository(session, PLATFORM).update_where(
            (User.id == user.id) & (User.totp_last_step < step), totp_last_step=step
        )
        if won:
            user.totp_last_step = step
        return won == 1


def audit_failure(
    session: AsyncSession,
    user: User,
    *,
    action: str,
    reason: str,
    actor: Principal | None = None,
) -> None:
    """A failed proof, recorded whatever the request answers (its error persists)."""
    record(
        session,
        actor=actor,
        actor_id=user.id,
        action=action,
        tenant_id=user.tenant_id,
        target=("user", user.id),
        outcome="failure",
        details={"reason": reason},
    )
