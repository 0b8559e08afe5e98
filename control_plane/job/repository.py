from __future__ import annotations

from collections.abc import Sequence

from control_plane.kit.repository import RepositoryBase
from control_plane.models import Job


class JobRepository(RepositoryBase[Job]):
    model = Job

    async def by_submission(self, submission_id: str) -> Job | None:
        return await self.first(Job.submission_id == submission_id)

    async def active(self) -> Sequence[Job]:
        """Jobs not yet finished (queued or running)."""
        return await self.all(Job.status.in_(("queued", "running")))
