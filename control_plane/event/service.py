"""Domain events: written to the outbox in the transaction of the change they describe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.db import Database
from control_plane.event.repository import EventRepository, OutboxRepository
from control_plane.event.types import EventType
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.kit.repository import PLATFORM, Scope
from control_plane.models import Event

# Event fields that the API shows elsewhere only to holders of an action: others read
# them as null in /events (their own email excepted), not through the back door.
GUARDED_FIELDS = {"email": Action.USERS_READ, "url": Action.WEBHOOKS_WRITE}


def visible_data(principal: Principal, event: Event) -> dict[str, Any]:
    """The event's data as ``principal`` may read it."""
    data = dict(event.data)
    for field, action in GUARDED_FIELDS.items():
        if field in data and not principal.can(action) and not _own(principal, field, data):
            data[field] = None
    return data


def _own(principal: Principal, field: str, data: dict[str, Any]) -> bool:
    return field == "email" and data.get("user_id") == principal.user_id


def emit(
    session: AsyncSession,
    *,
    tenant_id: str | None,
    type: EventType | str,
    data: dict[str, Any],
    dedupe_key: str | None = None,
) -> Event:
    """Add an event to the caller's transaction; it is relayed once that commits.
    ``type`` is an ``EventType`` (a plain string must name one: ValueError if not)."""
    event = Event(
        id=new_id("evt"),
        tenant_id=tenant_id,
        type=EventType(type).value,
        data=data,
        dedupe_key=dedupe_key,
    )
    EventRepository(session, PLATFORM).add(event)
    OutboxRepository(session).enqueue(event.id)
    return event


async def emit_once(
    db: Database,
    *,
    tenant_id: str | None,
    type: EventType,
    data: dict[str, Any],
    dedupe_key: str,
) -> bool:
    """An event outside any request (e.g. a quota threshold), at most once per dedupe key."""
    try:
        async with db.sessionmaker() as session, session.begin():
            emit(session, tenant_id=tenant_id, type=type, data=data, dedupe_key=dedupe_key)
    except IntegrityError:
        return False
    return True


async def list_events(
    session: AsyncSession, scope: Scope, params: PageParams
) -> tuple[Sequence[Event], str | None]:
    return await EventRepository(session, scope).page(params)
