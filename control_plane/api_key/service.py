"""API keys: ``atr_<prefix>_<secret>``, shown once, scopes within the creator's reach."""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.api_key.repository import ApiKeyRepository
from control_plane.api_key.schemas import ApiKeyCreate
from control_plane.audit.service import record
from control_plane.auth.permissions import SCOPE_ACTIONS, Action
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import hash_secret
from control_plane.errors import Forbidden, NotFound, ValidationFailed
from control_plane.event.service import emit
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.invalidation import Invalidation, identity_changed
from control_plane.kit.pagination import PageParams
from control_plane.models import ApiKey

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def _new_key() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return prefix, f"atr_{prefix}_{secrets.token_urlsafe(32)}"


def _check_scopes(principal: Principal, scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - SCOPE_ACTIONS.keys())
    if unknown:
        raise ValidationFailed(f"unknown scopes: {', '.join(unknown)}", extra={"field": "scopes"})
    too_wide = [s for s in scopes if not SCOPE_ACTIONS[s] <= principal.actions]
    if too_wide:
        raise Forbidden(f"scopes wider than your own permissions: {', '.join(sorted(too_wide))}")
    return sorted(set(scopes))


async def create(
    session: AsyncSession, principal: Principal, tenant_id: str, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    """A key of ``tenant_id`` (the caller's), made by ``principal``."""
    scopes = _check_scopes(principal, data.scopes)
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise ValidationFailed("expires_at must be in the future", extra={"field": "expires_at"})
    expires_at = _within_parent(principal, data.expires_at)
    prefix, key = _new_key()
    row = ApiKeyRepository(session, tenant_id).add(
        ApiKey(
            id=new_id("akey"),
            tenant_id=tenant_id,
            user_id=principal.user_id,
            name=data.name,
            prefix=prefix,
            key_hash=hash_secret(key),
            scopes=scopes,
            expires_at=expires_at,
            rate_limit_rps=data.rate_limit_rps,
            parent_id=principal.api_key_id,
        )
    )
    await session.flush()
    emit(
        session,
        tenant_id=tenant_id,
        type="api_key.created",
        data={"api_key_id": row.id, "name": row.name, "scopes": scopes},
    )
    record(
        session,
        actor=principal,
        action="api_key.create",
        tenant_id=tenant_id,
        target=("api_key", row.id),
        details={"name": row.name, "scopes": scopes},
    )
    return row, key


def _within_parent(principal: Principal, expires_at: datetime | None) -> datetime | None:
    """A key made with a key never outlives it (it is revoked with it, too)."""
    parent = principal.key_expires_at
    if parent is None:
        return expires_at
    return parent if expires_at is None else min(expires_at, parent)


def _visible(principal: Principal) -> list[object]:
    """Owners and admins see every key of the tenant; others only their own."""
    return [] if principal.can(Action.USERS_WRITE) else [ApiKey.user_id == principal.user_id]


async def list_page(
    session: AsyncSession, principal: Principal, tenant_id: str, params: PageParams
) -> tuple[Sequence[ApiKey], str | None]:
    repo = ApiKeyRepository(session, tenant_id)
    return await repo.page(params, *_visible(principal))  # type: ignore[arg-type]


async def revoke(
    session: AsyncSession,
    principal: Principal,
    tenant_id: str,
    key_id: str,
    *,
    invalidation: Invalidation,
) -> None:
    repo = ApiKeyRepository(session, tenant_id)
    row = await repo.first(ApiKey.id == key_id, *_visible(principal))  # type: ignore[arg-type]
    if row is None:
        raise NotFound("API key not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await repo.revoke_descendants(row.id, row.revoked_at)
        identity_changed(invalidation, session)
        emit(session, tenant_id=row.tenant_id, type="api_key.revoked", data={"api_key_id": row.id})
        record(
            session,
            actor=principal,
            action="api_key.revoke",
            tenant_id=row.tenant_id,
            target=("api_key", row.id),
        )
