"""Dedicated deployments metered by what runs: replica-seconds x CPUs (and GPUs) into
the ``cpu_seconds`` (``gpu_seconds``) ledger, counted against the plan's monthly hours.

The reconciler reports on every tick the dedicated replicas Ray has up. The time from
one report to the next is billed at the earlier report's replicas; a longer gap than
``max_gap_s`` (Ray unreachable, the process paused) is billed for ``max_gap_s`` only.
Time is cut into fixed slots (a minute), and each slot is metered once it has passed,
under a source id of (deployment, slot): the ledger and the quota counter take each
source once, so a second control-plane process reporting the same slot counts nothing
twice. A restart loses the slot in progress (under a minute, never billed twice).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from control_plane.kit.clock import utcnow
from control_plane.plan.catalog import Limit
from control_plane.quota.service import Quotas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Running:
    """One dedicated deployment as the reconciler sees it in the cluster."""

    tenant_id: str
    name: str
    replicas: int
    cpus: float  # per replica
    gpus: float


@dataclass
class _Slot:
    tenant_id: str
    name: str
    cpu_s: float = 0.0
    gpu_s: float = 0.0


class ReplicaMeter:
    def __init__(
        self,
        quotas: Quotas,
        *,
        slot_s: int = 60,
        max_gap_s: float = 120.0,
        clock: Callable[[], datetime] = utcnow,
        source: str = "replicas",
        dimension: str = "deployment",
    ) -> None:
        """``source`` and ``dimension`` name what is metered in the ledger: a dedicated
        deployment's replicas, or a tenant's own Ray cluster (``cluster``)."""
        self._quotas, self._clock = quotas, clock
        self._source, self._dimension = source, dimension
        self._slot, self._max_gap = timedelta(seconds=slot_s), timedelta(seconds=max_gap_s)
        self._last: datetime | None = None
        self._seen: dict[str, Running] = {}
        self._open: dict[tuple[str, datetime], _Slot] = {}
        self._carry: dict[tuple[str, Limit], float] = {}

    async def observe(self, running: dict[str, Running]) -> None:
        """What runs now, by deployment id; bills the time since the last report."""
        now = self._clock()
        if self._last is not None:
            self._accrue(self._last, min(now, self._last + self._max_gap))
        self._last, self._seen = now, running
        await self._flush(now)

    def _start_of(self, when: datetime) -> datetime:
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        return epoch + ((when - epoch) // self._slot) * self._slot

    def _accrue(self, start: datetime, end: datetime) -> None:
        while start < end:
            slot = self._start_of(start)
            upto = min(end, slot + self._slot)
            seconds = (upto - start).total_seconds()
            for deployment_id, seen in self._seen.items():
                if seen.replicas <= 0:
                    continue
                acc = self._open.setdefault((deployment_id, slot), _Slot(seen.tenant_id, seen.name))
                acc.cpu_s += seen.replicas * seen.cpus * seconds
                acc.gpu_s += seen.replicas * seen.gpus * seconds
            start = upto

    async def _flush(self, now: datetime) -> None:
        """Meter the slots that have passed; on failure keep them for the next report."""
        for key in sorted(k for k in self._open if k[1] + self._slot <= now):
            try:
                await self._meter(key[0], key[1], self._open[key])
            except Exception:
                log.exception("could not meter replica usage; will retry")
                return
            del self._open[key]

    async def _meter(self, deployment_id: str, slot: datetime, acc: _Slot) -> None:
        """Whole seconds; the fraction left over is carried into the deployment's next slot."""
        source = f"{self._source}:{deployment_id}:{slot.isoformat()}"
        for limit, seconds in (
            (Limit.MONTHLY_CPU_HOURS, acc.cpu_s),
            (Limit.MONTHLY_GPU_HOURS, acc.gpu_s),
        ):
            total = seconds + self._carry.get((deployment_id, limit), 0.0)
            amount = math.floor(total + 1e-9)
            if amount > 0:
                await self._quotas.meter(
                    acc.tenant_id,
                    limit,
                    amount,
                    source_id=source,
                    occurred_at=slot,
                    dimensions={self._dimension: acc.name, f"{self._dimension}_id": deployment_id},
                )
            self._carry[(deployment_id, limit)] = max(0.0, total - amount)
