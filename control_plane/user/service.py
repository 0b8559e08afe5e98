"""Users: tenant members managed by their owners/admins, and platform admins.

An email address is unique within a tenant (platform admins: among themselves), so no
tenant can learn of, or take, an address another tenant uses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.api_key.repository import ApiKeyRepository
from control_plane.audit.service import record
from control_plane.auth.passwords import Passwords
from control_plane.auth.permissions import Action, Role
from control_plane.auth.principal import Principal
from control_plane.auth.proof import Proof
from control_plane.auth.repository import RefreshTokenRepository
from control_plane.config import Settings
from control_plane.errors import Conflict, Forbidden, NotFound, TenantRequired, ValidationFailed
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.invalidation import Invalidation, identity_changed
from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import PLATFORM
from control_plane.models import Tenant, User
from control_plane.tenant.repository import TenantRepository
from control_plane.tenant.service import scope_of
from control_plane.user.repository import UserRepository
from control_plane.user.schemas import UserCreate, UserUpdate


async def create(
    session: AsyncSession,
    principal: Principal,
    data: UserCreate,
    *,
    passwords: Passwords,
    settings: Settings,
) -> User:
    tenant_id = await _target_tenant(session, principal, data)
    _check_may_grant(principal, data.role)
    _check_password(settings, data.password)
    users = UserRepository(session, PLATFORM)
    await _ensure_email_free(session, data.email, tenant_id)
    user = users.add(
        User(
            id=new_id("usr"),
            tenant_id=tenant_id,
            email=data.email,
            password_hash=await passwords.hash(data.password),
            role=data.role.value,
        )
    )
    await _flush_unique_email(session)
    emit(
        session,
        tenant_id=tenant_id,
        type="user.created",
        data={"user_id": user.id, "email": user.email, "role": user.role},
    )
    record(
        session,
        actor=principal,
        action="user.create",
        tenant_id=tenant_id,
        target=("user", user.id),
        details={"email": user.email, "role": user.role},
    )
    return user


async def _target_tenant(
    session: AsyncSession, principal: Principal, data: UserCreate
) -> str | None:
    if not principal.is_platform_admin:
        if data.tenant_id is not None and data.tenant_id != principal.tenant_id:
            raise Forbidden("only platform admins may set tenant_id")
        return principal.tenant_id
    if data.role is Role.PLATFORM_ADMIN:
        if data.tenant_id is not None:
            raise ValidationFailed(
                "platform admins belong to no tenant", extra={"field": "tenant_id"}
            )
        return None
    if data.tenant_id is None:
        raise ValidationFailed("tenant_id is required", extra={"field": "tenant_id"})
    if await TenantRepository(session, PLATFORM).get(data.tenant_id) is None:
        raise NotFound("tenant not found")
    return data.tenant_id


def _check_may_grant(principal: Principal, role: Role) -> None:
    if role is Role.PLATFORM_ADMIN and not principal.is_platform_admin:
        raise Forbidden("only platform admins may create platform admins")
    if role is Role.OWNER and not principal.can(Action.USERS_MANAGE_OWNERS):
        raise Forbidden("only owners may grant the owner role")


def _check_password(settings: Settings, password: str) -> None:
    if len(password) < settings.password_min_length:
        raise ValidationFailed(
            f"password must have at least {settings.password_min_length} characters",
            extra={"field": "password"},
        )


async def _ensure_email_free(session: AsyncSession, email: str, tenant_id: str | None) -> None:
    """Only this tenant's (or, for platform admins, the platform's) accounts are
    consulted: whether another tenant uses the address is never revealed."""
    if await UserRepository(session, PLATFORM).by_email(email, tenant_id):
        raise _email_taken()


async def _flush_unique_email(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError:  # taken by a racing request since the check
        raise _email_taken() from None


def _email_taken() -> Conflict:
    return Conflict("this email is already in use here", extra={"field": "email"})


# At most this many accounts with one email are tried by a sign-in naming no tenant.
SIGN_IN_CANDIDATES = 10


async def account_for_sign_in(
    session: AsyncSession, *, passwords: Passwords, email: str, password: str, tenant: str | None
) -> tuple[User | None, Sequence[User]]:
    """The account these credentials open, or None (a wrong password, to the caller),
    and the accounts that were tried (a failure is audited in each one's tenant).

    With ``tenant`` (its slug or id) only that tenant's account is tried. Without it,
    every account with the email is (in parallel, so the time taken hardly depends on
    their number), and the one whose password matches is it; when several match,
    TenantRequired. None matching looks exactly like an unknown email."""
    candidates = await _candidates(session, email, tenant)
    if not candidates:
        await passwords.verify(None, password)  # the same work as for an account
        return None, candidates
    checks = [passwords.verify(user.password_hash, password) for user in candidates]
    verdicts = await asyncio.gather(*checks)
    matching = [user for user, ok in zip(candidates, verdicts, strict=True) if ok]
    if len(matching) > 1:
        raise TenantRequired(
            "this email and password fit accounts in more than one tenant: "
            "send `tenant` (the tenant's slug) too"
        )
    return (matching[0] if matching else None), candidates


async def _candidates(session: AsyncSession, email: str, tenant: str | None) -> Sequence[User]:
    users = UserRepository(session, PLATFORM)
    if tenant is None:
        return await users.with_email(email, limit=SIGN_IN_CANDIDATES)
    named = (Tenant.slug == tenant.strip().lower()) | (Tenant.id == tenant.strip())
    found = await TenantRepository(session, PLATFORM).first(named)
    if found is None:
        return []
    user = await users.by_email(email, found.id)
    return [user] if user else []


async def get(session: AsyncSession, principal: Principal, user_id: str) -> User:
    user = await UserRepository(session, scope_of(principal)).get(user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def list_page(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[Sequence[User], str | None]:
    return await UserRepository(session, scope_of(principal)).page(params)


_PROOF = {"current_password", "totp_code"}  # proof of the caller, not account attributes


async def update(
    session: AsyncSession,
    principal: Principal,
    user_id: str,
    data: UserUpdate,
    *,
    passwords: Passwords,
    settings: Settings,
    proof: Proof,
    invalidation: Invalidation,
) -> User:
    if principal.kind != "user":
        raise Forbidden("API keys cannot change accounts")
    user = await get(session, principal, user_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True, exclude=_PROOF)
    await _authorize_change(proof, session, principal, user, data, changes)
    if "role" in changes:
        await _change_role(session, principal, user, data.role)
    if "email" in changes and changes["email"] != user.email:
        await _change_email(session, user, changes["email"])
    if data.password is not None:
        _check_password(settings, data.password)
        await _change_password(passwords, session, principal, user, data.password)
    identity_changed(invalidation, session)
    changes.pop("password", None)
    emit(
        session, tenant_id=user.tenant_id, type="user.updated", data={"user_id": user.id, **changes}
    )
    record(
        session,
        actor=principal,
        action="user.update",
        tenant_id=user.tenant_id,
        target=("user", user.id),
        details={**changes, "password_changed": data.password is not None},
    )
    return user


async def _change_email(session: AsyncSession, user: User, email: str) -> None:
    await _ensure_email_free(session, email, user.tenant_id)
    user.email = email
    await _flush_unique_email(session)


async def _authorize_change(
    proof: Proof,
    session: AsyncSession,
    principal: Principal,
    user: User,
    data: UserUpdate,
    changes: dict[str, object],
) -> None:
    """Before anything changes: others' accounts need the role to manage them (an
    owner's, the owner-management permission); one's own sign-in secrets need a
    recent sign-in or the current password (and MFA code)."""
    is_self = user.id == principal.user_id
    if not is_self and not principal.can(Action.USERS_WRITE):
        raise Forbidden("you may only change your own account")
    if not is_self and user.role == Role.OWNER and not principal.can(Action.USERS_MANAGE_OWNERS):
        raise Forbidden("only owners may change an owner's account")
    sign_in_changes = "password" in changes or changes.get("email", user.email) != user.email
    if is_self and sign_in_changes:
        await proof.require_reauth(
            session,
            principal,
            user,
            current_password=data.current_password,
            totp_code=data.totp_code,
            action="user.update",
        )


async def _change_role(
    session: AsyncSession, principal: Principal, user: User, role: Role | None
) -> None:
    assert role is not None
    if not principal.can(Action.USERS_WRITE):
        raise Forbidden("only owners and admins may change roles")
    if (Role.PLATFORM_ADMIN in (role, Role(user.role))) and role.value != user.role:
        raise Forbidden("the platform admin role cannot be granted or removed here")
    if Role.OWNER in (role, Role(user.role)) and not principal.can(Action.USERS_MANAGE_OWNERS):
        raise Forbidden("only owners may grant or change the owner role")
    if user.role == Role.OWNER and role is not Role.OWNER:
        await _ensure_not_last_owner(session, user)
    user.role = role.value


async def _ensure_not_last_owner(session: AsyncSession, user: User) -> None:
    assert user.tenant_id is not None
    if await UserRepository(session, user.tenant_id).count(User.role == Role.OWNER.value) <= 1:
        raise Conflict("a tenant must keep at least one owner")


async def _ensure_not_last_platform_admin(session: AsyncSession) -> None:
    if await UserRepository(session, PLATFORM).count(User.role == Role.PLATFORM_ADMIN.value) <= 1:
        raise Conflict("the platform must keep at least one platform admin")


async def _change_password(
    passwords: Passwords, session: AsyncSession, principal: Principal, user: User, password: str
) -> None:
    """Every sign-in session of the user ends, but the one changing its own password."""
    user.password_hash = await passwords.hash(password)
    own = principal.session_id if user.id == principal.user_id else None
    await RefreshTokenRepository(session).revoke_other_families(user.id, keep=own, when=utcnow())


async def delete(
    session: AsyncSession, principal: Principal, user_id: str, *, invalidation: Invalidation
) -> None:
    user = await get(session, principal, user_id)
    if user.role == Role.OWNER:
        if not principal.can(Action.USERS_MANAGE_OWNERS):
            raise Forbidden("only owners may remove an owner")
        await _ensure_not_last_owner(session, user)
    if user.role == Role.PLATFORM_ADMIN:
        await _ensure_not_last_platform_admin(session)
    if user.tenant_id is not None:
        await ApiKeyRepository(session, user.tenant_id).revoke_all_of_user(user.id, utcnow())
    await UserRepository(session, PLATFORM).delete(user)
    identity_changed(invalidation, session)
    emit(
        session,
        tenant_id=user.tenant_id,
        type="user.deleted",
        data={"user_id": user.id, "email": user.email},
    )
    record(
        session,
        actor=principal,
        action="user.delete",
        tenant_id=user.tenant_id,
        target=("user", user.id),
        details={"email": user.email},
    )
