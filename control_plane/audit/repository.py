from collections.abc import Sequence

from control_plane.kit.repository import RepositoryBase
from control_plane.models import AuditEvent


class AuditRepository(RepositoryBase[AuditEvent]):
    model = AuditEvent

    async def links(self, chain: str, *, after: int, limit: int) -> Sequence[AuditEvent]:
        """Rows of ``chain`` after position ``after``, in chain order."""
        stmt = self.select(AuditEvent.chain == chain, AuditEvent.seq > after)
        return await self._scalars(stmt.order_by(AuditEvent.seq).limit(limit))
