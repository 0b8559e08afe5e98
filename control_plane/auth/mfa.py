"""TOTP MFA of one's own account: enrolment, confirming it, turning it off."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.auth.proof import Proof, own_user
from control_plane.auth.repository import RefreshTokenRepository
from control_plane.auth.schemas import MfaChange, MfaSetup
from control_plane.auth.totp import SecretBox, new_secret, provisioning_uri
from control_plane.errors import Conflict
from control_plane.kit.clock import utcnow
from control_plane.kit.invalidation import Invalidation, identity_changed


async def setup(session: AsyncSession, principal: Principal, *, secrets: SecretBox) -> MfaSetup:
    """A new pending secret; nothing changes until it is confirmed with ``enable``."""
    user = await own_user(session, principal)
    if user.mfa_enabled:
        raise Conflict("MFA is already on; disable it first")
    secret = new_secret()
    user.mfa_pending_secret = secrets.seal(secret)
    _audit(session, principal, "auth.mfa_setup")
    return MfaSetup(secret=secret, otpauth_uri=provisioning_uri(secret, user.email))


async def enable(
    session: AsyncSession,
    principal: Principal,
    body: MfaChange,
    *,
    proof: Proof,
    invalidation: Invalidation,
) -> None:
    """Confirm enrolment. The user's other sign-in sessions end: they were opened
    without the second factor, perhaps by whoever knew the password."""
    user = await own_user(session, principal)
    if user.mfa_enabled:
        raise Conflict("MFA is already on")
    if user.mfa_pending_secret is None:
        raise Conflict("call /auth/mfa/setup first")
    await proof.require_reauth(
        session,
        principal,
        user,
        current_password=body.current_password,
        action="auth.mfa_enable",
    )
    await proof.check_totp(
        session,
        user,
        user.mfa_pending_secret,
        body.code,
        action="auth.mfa_enable",
        actor=principal,
    )
    user.mfa_secret, user.mfa_pending_secret, user.mfa_enabled = user.mfa_pending_secret, None, True
    await RefreshTokenRepository(session).revoke_other_families(
        user.id, keep=principal.session_id, when=utcnow()
    )
    identity_changed(invalidation, session)
    _audit(session, principal, "auth.mfa_enable")


async def disable(
    session: AsyncSession,
    principal: Principal,
    body: MfaChange,
    *,
    proof: Proof,
    invalidation: Invalidation,
) -> None:
    user = await own_user(session, principal)
    if not user.mfa_enabled:
        raise Conflict("MFA is not on")
    await proof.require_reauth(
        session,
        principal,
        user,
        current_password=body.current_password,
        code_checked_by_caller=True,  # the body's code is this re-authentication's factor
        action="auth.mfa_disable",
    )
    await proof.check_totp(
        session,
        user,
        user.mfa_secret,
        body.code,
        action="auth.mfa_disable",
        actor=principal,
    )
    user.mfa_secret, user.mfa_enabled = None, False
    identity_changed(invalidation, session)
    _audit(session, principal, "auth.mfa_disable")


def _audit(session: AsyncSession, principal: Principal, action: str) -> None:
    record(
        session,
        actor=principal,
        action=action,
        tenant_id=principal.tenant_id,
        target=("user", principal.user_id),
    )
