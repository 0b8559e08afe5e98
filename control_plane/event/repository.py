from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Text, cast, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.kit.repository import RepositoryBase
from control_plane.models import Event, OutboxPending


class StoredEvent(NamedTuple):
    """An event with its ``data`` as the JSON text stored, not decoded."""

    id: str
    tenant_id: str | None
    type: str
    data_json: str
    created_at: datetime


class EventRepository(RepositoryBase[Event]):
    model = Event

    async def stored(self, ids: Sequence[str]) -> list[StoredEvent]:
        """The events ``ids``, in id order, with their data as stored."""
        stmt = (
            self.select(Event.id.in_(ids))
            .with_only_columns(
                Event.id, Event.tenant_id, Event.type, cast(Event.data, Text), Event.created_at
            )
            .order_by(Event.id)
        )
        return [StoredEvent(*row) for row in (await self.session.execute(stmt)).all()]


class OutboxRepository:
    """The relay's work queue; internal, never reached by tenant requests."""

    DUTIES = ("fanout", "stream")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def enqueue(self, event_id: str) -> None:
        for duty in self.DUTIES:
            self.session.add(OutboxPending(duty=duty, event_id=event_id))

    async def claim(self, duty: str, batch: int) -> list[str]:
        """Take up to ``batch`` oldest event ids for ``duty``; they are gone from the queue
        when the caller's transaction commits, and back if it rolls back. On Postgres,
        concurrent relays skip each other's rows."""
        oldest = (
            select(OutboxPending.event_id)
            .where(OutboxPending.duty == duty)
            .order_by(OutboxPending.event_id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            delete(OutboxPending)
            .where(OutboxPending.duty == duty, OutboxPending.event_id.in_(oldest.scalar_subquery()))
            .returning(OutboxPending.event_id)
        )
        return sorted((await self.session.scalars(stmt)).all())

    async def drop(self, duty: str) -> None:
        await self.session.execute(delete(OutboxPending).where(OutboxPending.duty == duty))
