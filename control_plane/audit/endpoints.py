from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from control_plane.audit import service
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, SessionDep
from control_plane.errors import ValidationFailed, responses
from control_plane.kit.pagination import Page, PageDep
from control_plane.kit.schemas import ReadSchema
from control_plane.tenant.service import scope_of

router = APIRouter(
    prefix="/api/v1/audit-events",
    tags=["audit"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)


class AuditEventRead(ReadSchema):
    id: str
    tenant_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    request_id: str | None
    client_address: str | None
    created_at: datetime
    details: dict[str, Any]


@router.get("", response_model=Page[AuditEventRead])
async def list_(
    session: SessionDep,
    me: Annotated[Principal, Depends(Authorize(Action.AUDIT_READ))],
    page: PageDep,
    action: Annotated[str | None, Query(max_length=80, description="e.g. `auth.login`")] = None,
) -> Page[AuditEventRead]:
    """The audit trail, newest first: the caller's tenant, or all for platform admins."""
    rows, cursor = await service.list_events(session, scope_of(me), page, action=action)
    return Page(items=[AuditEventRead.model_validate(r) for r in rows], next_cursor=cursor)
