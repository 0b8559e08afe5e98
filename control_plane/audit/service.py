"""Recording and listing the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import chain  # noqa: F401  (links rows into their chain on insert)
from control_plane.audit.repository import AuditRepository
from control_plane.auth.principal import Principal
from control_plane.kit.context import current_client_address, current_request_id
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import PLATFORM, Scope
from control_plane.models import AuditEvent


def record(
    session: AsyncSession,
    *,
    actor: Principal | None,
    action: str,
    tenant_id: str | None,
    target: tuple[str, str | None] | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    actor_id: str | None = None,
) -> AuditEvent:
    """Add an audit record to the caller's transaction (it commits with the change)."""
    event = AuditEvent(
        id=new_id("aud"),
        tenant_id=tenant_id,
        actor_type=actor.kind if actor else "anonymous",
        actor_id=actor.actor_id if actor else actor_id,
        action=action,
        target_type=target[0] if target else None,
        target_id=target[1] if target else None,
        outcome=outcome,
        request_id=current_request_id(),
        client_address=current_client_address(),
        details=_safe_details(details or {}),
    )
    AuditRepository(session, PLATFORM).add(event)
    return event


def _safe_details(details: dict[str, Any]) -> dict[str, Any]:
    """An ``email`` is kept only when well formed: what a caller typed as a user name (a
    password by mistake, a megabyte of garbage) is not written to the trail verbatim."""
    if "email" not in details or details["email"] is None:
        return details
    if _well_formed_email(details["email"]):
        return details
    return {**details, "email": None, "email_malformed": True}


def _well_formed_email(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 254:
        return False
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


async def list_events(
    session: AsyncSession, scope: Scope, params: PageParams, *, action: str | None = None
) -> tuple[Sequence[AuditEvent], str | None]:
    repo = AuditRepository(session, scope)
    where = [AuditEvent.action == action] if action else []
    return await repo.page(params, *where, newest_first=True)
