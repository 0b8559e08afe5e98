"""Users: tenant members managed by their owners/admins, and platform admins."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.api_key.repository import ApiKeyRepository
from control_plane.audit.service import record
from control_plane.auth.permissions import Action, Role
from control_plane.auth.principal import Principal
from control_plane.auth.repository import RefreshTokenRepository
from control_plane.errors import Conflict, Forbidden, NotFound, ValidationFailed
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import PLATFORM
from control_plane.models import User
from control_plane.services import Services
from control_plane.tenant.repository import TenantRepo
from control_plane.tenant.service import scope_of
from control_plane.user.repository import UserRepository
from control_plane.user.schemas import UserCreate, UserUpdate


async def create(
    services: Services, session: AsyncSession, principal: Principal, data: UserCreate
) -> User:
    tenant_id = await _target_tenant(session, principal, data)
    _check_may_grant(principal, data.role)
    _check_password(services, data.password)
    users = UserRepository(session, PLATFORM)
    if await users.by_email(data.email):
        raise Conflict("a user with this email exists", extra={"field": "email"})
    user = users.add(
        User(
            id=new_id("usr"),
            tenant_id=tenant_id,
            email=data.email,
            password_hash=await services.passwords.hash(data.password),
            role=data.role.value,
        )
    )
    await session.flush()
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
    if await TenantRepo(session, PLATFORM).get(data.tenant_id) is None:
        raise NotFound("tenant not found")
    return data.tenant_id


def _check_may_grant(principal: Principal, role: Role) -> None:
    if role is Role.PLATFORM_ADMIN and not principal.is_platform_admin:
        raise Forbidden("only platform admins may create platform admins")
    if role is Role.OWNER and not principal.can(Action.USERS_MANAGE_OWNERS):
        raise Forbidden("only owners may grant the owner role")


def _check_password(services: Services, password: str) -> None:
    if len(password) < services.settings.password_min_length:
        raise ValidationFailed(
            f"password must have at least {services.settings.password_min_length} characters",
            extra={"field": "password"},
        )


async def get(session: AsyncSession, principal: Principal, user_id: str) -> User:
    user = await UserRepository(session, scope_of(principal)).get(user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def list_page(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[Sequence[User], str | None]:
    return await UserRepository(session, scope_of(principal)).page(params)


async def update(
    services: Services, session: AsyncSession, principal: Principal, user_id: str, data: UserUpdate
) -> User:
    if principal.kind != "user":
        raise Forbidden("API keys cannot change accounts")
    user = await get(session, principal, user_id)
    is_self = user.id == principal.user_id
    if not is_self and not principal.can(Action.USERS_WRITE):
        raise Forbidden("you may only change your own account")
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "role" in changes:
        await _change_role(session, principal, user, data.role)
    if "email" in changes and changes["email"] != user.email:
        if await UserRepository(session, PLATFORM).by_email(changes["email"]):
            raise Conflict("a user with this email exists", extra={"field": "email"})
        user.email = changes["email"]
    if data.password is not None:
        await _change_password(services, session, user, data.password)
    services.identity_changed(session)
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
    services: Services, session: AsyncSession, user: User, password: str
) -> None:
    _check_password(services, password)
    user.password_hash = await services.passwords.hash(password)
    await RefreshTokenRepository(session).revoke_all_of_user(user.id, utcnow())


async def delete(
    services: Services, session: AsyncSession, principal: Principal, user_id: str
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
    services.identity_changed(session)
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
