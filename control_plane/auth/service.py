"""Logging in, refreshing, logging out, and TOTP MFA."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.auth.repository import RefreshTokenRepository
from control_plane.auth.schemas import MfaSetup, TokenPair
from control_plane.auth.tokens import hash_secret, new_family_id, new_refresh_token
from control_plane.auth.totp import matching_step, new_secret, provisioning_uri
from control_plane.errors import (
    Conflict,
    Forbidden,
    InvalidTotp,
    LoginFailed,
    MfaRequired,
    RefreshTokenReused,
    TenantSuspended,
    Unauthorized,
)
from control_plane.kit.clock import utcnow
from control_plane.kit.context import current_client_address
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.models import RefreshToken, User
from control_plane.services import Services
from control_plane.tenant.repository import TenantRepo
from control_plane.user.repository import UserRepository

_BAD_LOGIN = "incorrect email or password"


async def login(
    services: Services, session: AsyncSession, *, email: str, password: str, totp_code: str | None
) -> TokenPair:
    """The OAuth2 password grant, with per-account and per-address throttling."""
    email = email.strip().lower()
    address = current_client_address()
    await services.throttle.check(email, address)
    users = UserRepository(session, PLATFORM)
    user = await users.by_email(email)
    if not await services.passwords.verify(user.password_hash if user else None, password):
        await _login_failed(services, session, email, user, "bad_password")
        raise LoginFailed(_BAD_LOGIN)
    assert user is not None
    await _ensure_tenant_active(session, user.tenant_id)
    if user.mfa_enabled:
        await _check_login_totp(services, session, user, totp_code)
    if services.passwords.needs_rehash(user.password_hash):
        user.password_hash = await services.passwords.hash(password)
    user.last_login_at = utcnow()
    await services.throttle.succeeded(email)
    pair = _issue_pair(services, session, user, family_id=new_family_id())
    record(
        session,
        actor=None,
        actor_id=user.id,
        action="auth.login",
        tenant_id=user.tenant_id,
        target=("user", user.id),
    )
    return pair


async def _login_failed(
    services: Services, session: AsyncSession, email: str, user: User | None, reason: str
) -> None:
    await services.throttle.failed(email, current_client_address())
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
    services: Services, session: AsyncSession, user: User, code: str | None
) -> None:
    if not code:
        raise MfaRequired("this account has MFA on: send totp_code")
    if not await _consume_totp(services, session, user, user.mfa_secret, code):
        await _login_failed(services, session, user.email, user, "bad_totp")
        raise InvalidTotp("the MFA code is wrong, expired or already used")


async def _consume_totp(
    services: Services, session: AsyncSession, user: User, sealed: str | None, code: str
) -> bool:
    """Accept a code once: its time step must be newer than any accepted before."""
    if sealed is None:
        return False
    step = matching_step(services.secrets.open(sealed), code)
    if step is None or step <= user.totp_last_step:
        return False
    # Conditional update: two requests racing with the same code cannot both win.
    won = await UserRepository(session, PLATFORM).update_where(
        (User.id == user.id) & (User.totp_last_step < step), totp_last_step=step
    )
    if won:
        user.totp_last_step = step
    return won == 1


async def _ensure_tenant_active(session: AsyncSession, tenant_id: str | None) -> None:
    if tenant_id is None:
        return
    tenant = await TenantRepo(session, PLATFORM).get(tenant_id)
    if tenant is None or tenant.status != "active":
        raise TenantSuspended("this tenant is suspended")


def _issue_pair(
    services: Services, session: AsyncSession, user: User, *, family_id: str
) -> TokenPair:
    token, digest = new_refresh_token()
    ttl = timedelta(seconds=services.settings.refresh_token_ttl_seconds)
    RefreshTokenRepository(session).add(
        RefreshToken(
            id=new_id("rtk"),
            user_id=user.id,
            family_id=family_id,
            token_hash=digest,
            expires_at=utcnow() + ttl,
        )
    )
    access = services.tokens.issue(
        user_id=user.id, tenant_id=user.tenant_id, role=user.role, session_id=family_id
    )
    return TokenPair(
        access_token=access,
        refresh_token=token,
        expires_in=services.settings.access_token_ttl_seconds,
    )


async def refresh(services: Services, session: AsyncSession, token: str) -> TokenPair:
    """Rotate a refresh token; a spent one presented again burns its whole family."""
    tokens = RefreshTokenRepository(session)
    row = await tokens.by_hash(hash_secret(token))
    if row is None or row.expires_at <= utcnow():
        raise Unauthorized("invalid or expired refresh token")
    if row.used_at is not None or not await _mark_used(session, row):
        await _burn_family(session, row)
        raise RefreshTokenReused("refresh token already used; the session is revoked")
    if row.revoked_at is not None:
        raise Unauthorized("refresh token revoked")
    user = await UserRepository(session, PLATFORM).get(row.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    await _ensure_tenant_active(session, user.tenant_id)
    return _issue_pair(services, session, user, family_id=row.family_id)


async def _mark_used(session: AsyncSession, row: RefreshToken) -> bool:
    won = await RefreshTokenRepository(session).mark_used(row.id, utcnow())
    row.used_at = utcnow()
    return won


async def _burn_family(session: AsyncSession, row: RefreshToken) -> None:
    await RefreshTokenRepository(session).revoke_family(row.family_id, utcnow())
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


async def logout(session: AsyncSession, principal: Principal) -> None:
    _require_user(principal)
    if principal.session_id:
        await RefreshTokenRepository(session).revoke_family(principal.session_id, utcnow())
    record(
        session,
        actor=principal,
        action="auth.logout",
        tenant_id=principal.tenant_id,
        target=("session", principal.session_id),
    )


async def _own_user(session: AsyncSession, principal: Principal) -> User:
    _require_user(principal)
    user = await UserRepository(session, PLATFORM).get(principal.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return user


async def mfa_setup(services: Services, session: AsyncSession, principal: Principal) -> MfaSetup:
    user = await _own_user(session, principal)
    if user.mfa_enabled:
        raise Conflict("MFA is already on; disable it first")
    secret = new_secret()
    user.mfa_pending_secret = services.secrets.seal(secret)
    record(
        session,
        actor=principal,
        action="auth.mfa_setup",
        tenant_id=user.tenant_id,
        target=("user", user.id),
    )
    return MfaSetup(secret=secret, otpauth_uri=provisioning_uri(secret, user.email))


async def mfa_enable(
    services: Services, session: AsyncSession, principal: Principal, code: str
) -> None:
    user = await _own_user(session, principal)
    if user.mfa_enabled:
        raise Conflict("MFA is already on")
    if user.mfa_pending_secret is None:
        raise Conflict("call /auth/mfa/setup first")
    if not await _consume_totp(services, session, user, user.mfa_pending_secret, code):
        raise InvalidTotp("the MFA code is wrong, expired or already used")
    user.mfa_secret, user.mfa_pending_secret, user.mfa_enabled = user.mfa_pending_secret, None, True
    services.identity_changed(session)
    record(
        session,
        actor=principal,
        action="auth.mfa_enable",
        tenant_id=user.tenant_id,
        target=("user", user.id),
    )


async def mfa_disable(
    services: Services, session: AsyncSession, principal: Principal, code: str
) -> None:
    user = await _own_user(session, principal)
    if not user.mfa_enabled:
        raise Conflict("MFA is not on")
    if not await _consume_totp(services, session, user, user.mfa_secret, code):
        raise InvalidTotp("the MFA code is wrong, expired or already used")
    user.mfa_secret, user.mfa_enabled = None, False
    services.identity_changed(session)
    record(
        session,
        actor=principal,
        action="auth.mfa_disable",
        tenant_id=user.tenant_id,
        target=("user", user.id),
    )
