"""Appends relayed events to a Redis Stream per tenant, ``<namespace>:events:<tenant>``
(``_platform`` for events of no tenant)."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.event.body import spliced
from control_plane.event.repository import EventRepository, OutboxRepository
from control_plane.kit.repository import PLATFORM

STREAM_MAXLEN = 100_000

_XADD_MANY = """
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 3
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*',
             'id', ARGV[at], 'type', ARGV[at + 1], 'body', ARGV[at + 2])
end
return #KEYS
"""


class EventStream:
    def __init__(self, redis: Redis | None, *, namespace: str) -> None:
        self._prefix = f"{namespace}:events"
        self._xadd_many = redis.register_script(_XADD_MANY) if redis is not None else None

    async def relay(self, session: AsyncSession, batch: int) -> int:
        """Append up to ``batch`` new events, in the caller's transaction; how many.

        One Lua call appends the whole batch (far cheaper than a command per event), and
        the event's JSON is spliced in as stored, not decoded and encoded again. If the
        commit fails after the append, the batch is appended again: at least once."""
        outbox = OutboxRepository(session)
        if self._xadd_many is None:
            await outbox.drop("stream")  # no Redis: nothing to stream to
            return 0
        ids = await outbox.claim("stream", batch)
        if not ids:
            return 0
        rows = await EventRepository(session, PLATFORM).stored(ids)
        keys = [f"{self._prefix}:{row.tenant_id or '_platform'}" for row in rows]
        args: list[str | int] = [STREAM_MAXLEN]
        for row in rows:
            body = spliced(row.id, row.type, row.tenant_id, row.created_at, row.data_json)
            args += [row.id, row.type, body]
        await self._xadd_many(keys=keys, args=args)
        return len(ids)
