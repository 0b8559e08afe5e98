from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, SessionDep
from control_plane.errors import (
    ValidationFailed,
    responses,
)
from control_plane.event.service import list_events, visible_data
from control_plane.kit.pagination import Page, PageParams, decode_cursor, encode_cursor
from control_plane.kit.schemas import ReadSchema
from control_plane.tenant.service import scope_of

router = APIRouter(
    prefix="/api/v1/events",
    tags=["events"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)


class EventRead(ReadSchema):
    id: str
    tenant_id: str | None
    type: str
    data: dict[str, Any]
    created_at: datetime


@router.get("", response_model=Page[EventRead])
async def list_(
    session: SessionDep,
    me: Annotated[Principal, Depends(Authorize(Action.EVENTS_READ))],
    after: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[EventRead]:
    """The tenant's events, oldest first; poll with `after=<next_cursor>` for new ones.
    Other users' emails need `users:read`, webhook URLs `webhooks:write` (else null)."""
    params = PageParams(limit=limit, after_id=decode_cursor(after) if after else None)
    rows, cursor = await list_events(session, scope_of(me), params)
    if cursor is None and rows:  # the end for now: resume from the last one seen
        cursor = encode_cursor(rows[-1].id)
    elif cursor is None and after:
        cursor = after
    items = [
        EventRead.model_validate(r).model_copy(update={"data": visible_data(me, r)}) for r in rows
    ]
    return Page(items=items, next_cursor=cursor)
