from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.kit.repository import TenantRepository
from control_plane.models import Event, OutboxPending, Webhook, WebhookDelivery


class EventRepository(TenantRepository[Event]):
    model = Event


class WebhookRepository(TenantRepository[Webhook]):
    model = Webhook


class DeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery


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
