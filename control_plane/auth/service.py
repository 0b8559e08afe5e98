"""Logging in, refreshing and logging out (MFA itself: ``auth.mfa``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.passwords import Passwords
from control_plane.auth.principal import Principal
from control_plane.auth.proof import Proof
from control_plane.auth.repository import RefreshTokenRepository
from control_plane.auth.schemas import TokenPair
from control_plane.auth.throttle import LoginThrottle
from control_plane.auth.tokens import AccessTokens, hash_secret, new_family_id, new_refresh_token
from control_plane.config import Settings
from control_plane.errors import (
    Forbidden,
    InvalidTotp,
    LoginFailed,
    MfaRequired,
    Overloaded,
    RefreshTokenReused,
    TenantSuspended,
    Unauthorized,
)
from control_plane.kit.clock import utcnow
from control_plane.kit.context import current_client_address
from control_plane.kit.hooks import after_commit
from control_plane.kit.ids import new_id
from control_plane.kit.invalidation import Invalidation
from control_plane.kit.repository import PLATFORM
from control_plane.models import RefreshToken, User
from control_plane.tenant.repository import TenantRepository
from control_plane.user.repository import UserRepository
from control_plane.user.service import account_for_sign_in

_BAD_LOGIN = "incorrect email or password"


async def login(
    session: AsyncSession,
    *,
    throttle: LoginThrottle,
    passwords: Passwords,
    proof: Proof,
    tokens: AccessTokens,
    settings: Settings,
    email: str,
    password: str,
    totp_code: str | None,
    tenant: str | None = None,
) -> TokenPair:
    """The OAuth2 password grant. Each attempt is counted before its password is checked
    (per account and client address, and per address), so parallel guesses cannot
    outrun the throttle; a wrong password or MFA code stays counted."""
    email = email.strip().lower()
    attempt = await throttle.reserve(email, current_client_address())
    try:
        user = await _authenticate(
            session,
            passwords=passwords,
            proof=proof,
            email=email,
            password=password,
            totp_code=totp_code,
            tenant=tenant,
        )
    except (LoginFailed, InvalidTotp):
        raise
    except BaseException:
        await attempt.release()  # no guess was judged: overloaded, MFA code to come, ...
        raise
    await attempt.succeeded()
    lifetime = timedelta(seconds=settings.refresh_family_lifetime_seconds)
    pair = _issue_pair(
        session,
        user,
        tokens=tokens,
        settings=settings,
        family_id=new_family_id(),
        family_ends=utcnow() + lifetime,
    )
    record(
        session,
        actor=None,
        actor_id=user.id,
        action="auth.login",
        tenant_id=user.tenant_id,
        target=("user", user.id),
    )
    return pair


async def _authenticate(
    session: AsyncSession,
    *,
    passwords: Passwords,
    proof: Proof,
    email: str,
    password: str,
    totp_code: str | None,
    tenant: str | None,
) -> User:
    user, tried = await account_for_sign_in(
        session, passwords=passwords, email=email, password=password, tenant=tenant
    )
    if user is None:
        accounts: Sequence[User | None] = tried or [None]
        for account in accounts:  # emails are per tenant: each tenant sees its own attempt
            _login_failed(session, email, account, "bad_password")
        raise LoginFailed(_BAD_LOGIN)
    await _ensure_tenant_active(session, user.tenant_id)
    if user.mfa_enabled:
        await _check_login_totp(proof, session, user, totp_code)
    if passwords.needs_rehash(user.password_hash):
        with contextlib.suppress(Overloaded):  # next time, then
            user.password_hash = await passwords.hash(password)
    user.last_login_at = utcnow()
    return user


def _login_failed(session: AsyncSession, email: str, user: User | None, reason: str) -> None:
    """Audit a failed sign-in (the throttle counted the attempt before it was checked)."""
    record(
        session,
        actor=None,
        actor_id=user.id if user else None,
        action="auth.login",
        tenant_id=user.tenant_id if user else None,
        target=("user", user.id if user else None),
        outcome="failure",
        details={"reason": reason, "email": email},
    )


async def _check_login_totp(
    proof: Proof, session: AsyncSession, user: User, code: str | None
) -> None:
    if not code:
        raise MfaRequired("this account has MFA on: send totp_code")
    # throttled per user across every route that checks a code (429 past the budget)
    if not await proof.verify_totp(session, user, user.mfa_secret, code, action="auth.login"):
        _login_failed(session, user.email, user, "bad_totp")
        raise InvalidTotp("the MFA code is wrong, expired or already used")


async def _ensure_tenant_active(session: AsyncSession, tenant_id: str | None) -> None:
    if tenant_id is None:
        return
    tenant = await TenantRepository(session, PLATFORM).get(tenant_id)
    if tenant is None or tenant.status != "active":
        raise TenantSuspended("this tenant is suspended")


def _issue_pair(
    session: AsyncSession,
    user: User,
    *,
    tokens: AccessTokens,
    settings: Settings,
    family_id: str,
    family_ends: datetime,
    signed_in: datetime | None = None,
) -> TokenPair:
    """``signed_in``: when the family's sign-in happened (None: now, a new sign-in)."""
    token, digest = new_refresh_token()
    ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)
    RefreshTokenRepository(session).add(
        RefreshToken(
            id=new_id("rtk"),
            user_id=user.id,
            family_id=family_id,
            token_hash=digest,
            expires_at=min(utcnow() + ttl, family_ends),
            family_expires_at=family_ends,
        )
    )
    access = tokens.issue(
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        session_id=family_id,
        auth_time=int(signed_in.timestamp()) if signed_in else None,
    )
    return TokenPair(
        access_token=access,
        refresh_token=token,
        expires_in=settings.access_token_ttl_seconds,
    )


async def refresh(
    session: AsyncSession,
    token: str,
    *,
    tokens: AccessTokens,
    settings: Settings,
    invalidation: Invalidation,
) -> TokenPair:
    """Rotate a refresh token; a spent one presented again burns its whole family (and
    its access tokens). A family ends at its absolute lifetime however fresh its chain."""
    refresh_tokens = RefreshTokenRepository(session)
    row = await refresh_tokens.by_hash(hash_secret(token))
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("invalid or expired refresh token")
    if row.family_expires_at <= utcnow():
        raise Unauthorized("this session has reached its maximum lifetime; sign in again")
    if row.used_at is not None or not await _mark_used(session, row):
        await _burn_family(invalidation, session, row)
        raise RefreshTokenReused("refresh token already used; the session is revoked")
    if row.revoked_at is not None:
        raise Unauthorized("refresh token revoked")
    user = await UserRepository(session, PLATFORM).get(row.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    await _ensure_tenant_active(session, user.tenant_id)
    return _issue_pair(
        session,
        user,
        tokens=tokens,
        settings=settings,
        family_id=row.family_id,
        family_ends=row.family_expires_at,
        # `auth_time` stays the sign-in's, however often the session refreshes
        signed_in=await refresh_tokens.signed_in_at(row.family_id) or row.created_at,
    )


async def _mark_used(session: AsyncSession, row: RefreshToken) -> bool:
    won = await RefreshTokenRepository(session).mark_used(row.id, utcnow())
    row.used_at = utcnow()
    return won


def _sessions_ended(invalidation: Invalidation, session: AsyncSession) -> None:
    """Once committed, every process drops what it cached of sessions: the ended one's
    access tokens are refused from the next request (the gateway's too)."""
    after_commit(session, lambda: invalidation.publish("sessions"))


async def _burn_family(
    invalidation: Invalidation, session: AsyncSession, row: RefreshToken
) -> None:
    await RefreshTokenRepository(session).revoke_family(row.family_id, utcnow())
    _sessions_ended(invalidation, session)
    user = await UserRepository(session, PLATFORM).get(row.user_id)
    record(
        session,
        actor=None,
        actor_id=row.user_id,
        action="auth.refresh_reuse",
        tenant_id=user.tenant_id if user else None,
        target=("session", row.family_id),
        outcome="failure",
    )


def _require_user(principal: Principal) -> None:
    if principal.kind != "user":
        raise Forbidden("this needs a signed-in user, not an API key")


async def logout(
    session: AsyncSession, principal: Principal, *, invalidation: Invalidation
) -> None:
    """End the caller's sign-in session: its refresh tokens and its access tokens."""
    _require_user(principal)
    if principal.session_id:
        await RefreshTokenRepository(session).revoke_family(principal.session_id, utcnow())
        _sessions_ended(invalidation, session)
    record(
        session,
        actor=principal,
        action="auth.logout",
        tenant_id=principal.tenant_id,
        target=("session", principal.session_id),
    )
