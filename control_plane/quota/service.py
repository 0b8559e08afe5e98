"""The one quota service that the API, the inference gateway, jobs and plugins call.

- ``charge``: check-and-charge a monthly metered quota (predictions, CPU-seconds, …),
  atomically, once per source id, and meter it into the usage ledger.
- ``meter``: count usage that has already happened (replica-seconds), never refused.
- ``ensure_left``: refuse new work once a monthly quota is used up.
- ``hold`` / ``release``: a concurrency slot (jobs) as a lease.
- counted quotas (storage, deployments) are reserved with ``quota.reservation``.
- ``rate``: the per-tenant (and per-key) token bucket.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from control_plane.db import Database
from control_plane.errors import NotFound, QuotaExceeded, RateLimited
from control_plane.event.service import emit_once
from control_plane.event.types import EventType
from control_plane.kit.clock import utcnow
from control_plane.kit.repository import PLATFORM
from control_plane.plan.catalog import (
    CONCURRENCY,
    COUNTED,
    METERED,
    RATES,
    Catalog,
    Limit,
    Meter,
    Plan,
)
from control_plane.quota.backend import ChargeResult, QuotaBackend, TakeResult
from control_plane.quota.periods import month_label, month_start, next_month
from control_plane.tenant.repository import TenantRepository
from control_plane.usage.recorder import UsageRecorder
from control_plane.usage.repository import UsageRepository

THRESHOLDS = (80, 100)
_MONTH_TTL_S = 40 * 86400


@dataclass(frozen=True)
class TenantLimits:
    plan: Plan
    overrides: dict[str, float | None]

    def get(self, limit: Limit) -> float | None:
        if limit.value in self.overrides:
            return self.overrides[limit.value]
        return self.plan.limits.get(limit)


@dataclass(frozen=True)
class QuotaStatus:
    name: str
    limit: float | None
    used: float | None
    period: str
    resets_at: datetime | None


def _exhausted(limit: Limit, ceiling: float, cap: int, used: int, now: datetime) -> QuotaExceeded:
    """429 for a charge past the month's ``cap``, with when the month resets."""
    reset_s = (next_month(month_start(now)) - now).total_seconds()
    return QuotaExceeded(
        f"monthly quota {limit.value} reached ({ceiling:g} on this plan)",
        retry_after=math.ceil(reset_s),
        headers=_headers(cap, cap - used, reset_s),
        extra={"quota": limit.value},
    )


def _headers(limit: float, remaining: float, reset_s: float) -> dict[str, str]:
    return {
        "RateLimit-Limit": f"{limit:g}",
        "RateLimit-Remaining": str(max(0, math.floor(remaining))),
        "RateLimit-Reset": str(max(0, math.ceil(reset_s))),
    }


class Quotas:
    def __init__(
        self,
        *,
        db: Database,
        backend: QuotaBackend,
        catalog: Catalog,
        recorder: UsageRecorder,
        cache_ttl_s: float,
        dedupe_ttl_s: int = 3600,
    ) -> None:
        self._db = db
        self._backend = backend
        self.catalog = catalog
        self._recorder = recorder
        self._ttl = cache_ttl_s
        self._dedupe_ttl = dedupe_ttl_s
        self._limits: dict[str, tuple[TenantLimits, float]] = {}

    @property
    def backend(self) -> QuotaBackend:
        """Where counters, leases and reservations (``quota.reservation``) are kept."""
        return self._backend

    def invalidate(self, _topic: str = "*") -> None:
        self._limits.clear()

    async def limits(self, tenant_id: str) -> TenantLimits:
        cached = self._limits.get(tenant_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self._db.sessionmaker() as session:
            tenant = await TenantRepository(session, PLATFORM).get(tenant_id)
        if tenant is None:
            raise NotFound("tenant not found")
        plan = self.catalog.get(tenant.plan) or self.catalog.plans["free"]
        limits = TenantLimits(plan, dict(tenant.limit_overrides or {}))
        self._limits[tenant_id] = (limits, time.monotonic() + self._ttl)
        return limits

    async def charge(
        self,
        tenant_id: str,
        limit: Limit,
        amount: int,
        *,
        source_id: str,
        dimensions: dict[str, Any] | None = None,
        hot: bool = False,
    ) -> ChargeResult:
        """Count ``amount`` (in the meter's unit) against a monthly quota, or raise 429.

        ``hot``: a caller that charges each source exactly once and very often (the
        inference gateway): no remembered source ids, and usage summed into one ledger
        row per flush instead of a row per call."""
        meter = METERED[limit]
        now = utcnow()
        ceiling = (await self.limits(tenant_id)).get(limit)
        cap = None if ceiling is None else int(ceiling * meter.per_limit_unit)
        dedupe = None if hot else f"{tenant_id}:{meter.metric}:{source_id}"
        result = await self._count(tenant_id, meter, amount, cap, dedupe=dedupe, at=now)
        if result.status == "charged" and hot:
            self._recorder.add(
                tenant_id=tenant_id,
                metric=meter.metric,
                quantity=amount,
                unit=meter.unit,
                dimensions=dimensions,
            )
        elif result.status == "charged":
            self._record(tenant_id, meter, amount, source_id, dimensions, at=now)
        if cap:
            await self._thresholds(tenant_id, limit, result.used - amount, result, cap, now)
        if result.status == "exceeded":
            raise _exhausted(limit, ceiling or 0, cap or 0, result.used, now)
        return result

    async def meter(
        self,
        tenant_id: str,
        limit: Limit,
        amount: int,
        *,
        source_id: str,
        occurred_at: datetime,
        dimensions: dict[str, Any] | None = None,
    ) -> ChargeResult:
        """Count usage that has already happened (a dedicated deployment's replica-seconds)
        into the month it happened in: never refused, counted once per ``source_id``, and
        it raises the 80 % and 100 % events; past the plan's included amount it is billed
        as overage."""
        meter = METERED[limit]
        dedupe = f"{tenant_id}:{meter.metric}:{source_id}"
        result = await self._count(tenant_id, meter, amount, None, dedupe=dedupe, at=occurred_at)
        if result.status != "charged":
            return result
        self._record(tenant_id, meter, amount, source_id, dimensions, at=occurred_at)
        ceiling = (await self.limits(tenant_id)).get(limit)
        if ceiling:
            cap = int(ceiling * meter.per_limit_unit)
            await self._thresholds(tenant_id, limit, result.used - amount, result, cap, occurred_at)
        return result

    async def _count(
        self,
        tenant_id: str,
        meter: Meter,
        amount: int,
        cap: int | None,
        *,
        dedupe: str | None,
        at: datetime,
    ) -> ChargeResult:
        """Add ``amount`` to the month's counter of ``at`` (seeded from the ledger when the
        backend has none), unless it would pass ``cap`` or ``dedupe`` was counted before."""
        key = f"{tenant_id}:{meter.metric}:{month_label(at)}"
        result = await self._backend.charge(key, amount, cap, dedupe=dedupe, ttl_s=self._dedupe_ttl)
        if result.status == "needs_seed":
            await self._seed(key, tenant_id, meter.metric, at)
            result = await self._backend.charge(
                key, amount, cap, dedupe=dedupe, ttl_s=self._dedupe_ttl
            )
        return result

    def _record(
        self,
        tenant_id: str,
        meter: Meter,
        amount: int,
        source_id: str,
        dimensions: dict[str, Any] | None,
        *,
        at: datetime,
    ) -> None:
        """A ledger row of its own for what was just counted (once per source id)."""
        self._recorder.record(
            tenant_id=tenant_id,
            metric=meter.metric,
            quantity=amount,
            unit=meter.unit,
            source_id=source_id,
            dimensions=dimensions,
            occurred_at=at,
        )

    async def ensure_left(self, tenant_id: str, limit: Limit, *, refused: str) -> None:
        """429 ``quota_exceeded`` naming ``limit`` when this month's is used up; ``refused``
        says what is refused (new deployments, scale-ups)."""
        ceiling = (await self.limits(tenant_id)).get(limit)
        if ceiling is None:
            return
        now = utcnow()
        used = await self._monthly_used(tenant_id, limit, now)
        if used < ceiling:
            return
        reset_s = (next_month(month_start(now)) - now).total_seconds()
        raise QuotaExceeded(
            f"monthly quota {limit.value} is used up ({used:g} of {ceiling:g} on this plan):"
            f" {refused} wait for the next month or a bigger plan",
            retry_after=math.ceil(reset_s),
            headers=_headers(ceiling, 0, reset_s),
            extra={"quota": limit.value},
        )

    async def _seed(self, key: str, tenant_id: str, metric: str, now: datetime) -> None:
        start = month_start(now)
        async with self._db.sessionmaker() as session:
            total = await UsageRepository(session, tenant_id).total(
                metric, start, next_month(start)
            )
        await self._backend.seed(key, int(total), ttl_s=_MONTH_TTL_S)

    async def _thresholds(
        self,
        tenant_id: str,
        limit: Limit,
        before: int,
        result: ChargeResult,
        cap: int,
        now: datetime,
    ) -> None:
        after = result.used if result.status == "charged" else cap
        for percent in THRESHOLDS:
            mark = cap * percent / 100
            if (before < mark <= after) or (result.status == "exceeded" and percent == 100):
                await emit_once(
                    self._db,
                    tenant_id=tenant_id,
                    type=EventType.QUOTA_THRESHOLD,
                    data={"quota": limit.value, "percent": percent, "period": month_label(now)},
                    dedupe_key=f"quota:{tenant_id}:{limit.value}:{month_label(now)}:{percent}",
                )

    async def hold(self, tenant_id: str, limit: Limit, holder: str, *, lease_s: float = 60) -> None:
        """Take (or renew) one slot of a concurrency quota, or raise 429."""
        assert limit in CONCURRENCY
        ceiling = (await self.limits(tenant_id)).get(limit)
        if ceiling is None:
            return
        if not await self._backend.acquire(
            f"{tenant_id}:{limit.value}", holder, int(ceiling), lease_s=lease_s
        ):
            raise QuotaExceeded(
                f"{limit.value} reached ({ceiling:g} on this plan)",
                retry_after=math.ceil(lease_s),
                headers=_headers(ceiling, 0, lease_s),
                extra={"quota": limit.value},
            )

    async def release(self, tenant_id: str, limit: Limit, holder: str) -> None:
        await self._backend.release(f"{tenant_id}:{limit.value}", holder)

    async def rate(
        self,
        tenant_id: str,
        limit: Limit,
        *,
        key_id: str | None = None,
        key_rps: float | None = None,
    ) -> dict[str, str]:
        """Take a token from the tenant's bucket (and the key's, if it has its own rate);
        return the RateLimit headers, or raise 429 carrying them."""
        assert limit in RATES
        rps = (await self.limits(tenant_id)).get(limit)
        headers: dict[str, str] = {}
        if rps is not None:
            headers = await self._take(f"{tenant_id}:{limit.value}", rps, limit.value)
        if key_id is not None and key_rps is not None:
            headers = await self._take(
                f"key:{key_id}:{limit.value}", key_rps, "this API key's rate"
            )
        return headers

    async def _take(self, key: str, rps: float, what: str) -> dict[str, str]:
        if rps <= 0:
            raise RateLimited(f"{what} is 0 on this plan", retry_after=60)
        burst = max(1.0, rps)
        taken: TakeResult = await self._backend.take(key, rps, burst)
        headers = _headers(rps, taken.remaining, (burst - taken.remaining) / rps)
        if not taken.allowed:
            raise RateLimited(
                f"rate limit {what} exceeded ({rps:g}/s)",
                retry_after=math.ceil(taken.retry_after),
                headers=headers,
            )
        return headers

    async def status(self, tenant_id: str) -> list[QuotaStatus]:
        limits = await self.limits(tenant_id)
        now = utcnow()
        resets = next_month(month_start(now))
        out = []
        for limit in Limit:
            ceiling = limits.get(limit)
            if limit in METERED:
                used = await self._monthly_used(tenant_id, limit, now)
                out.append(QuotaStatus(limit.value, ceiling, used, "month", resets))
            elif limit in CONCURRENCY:
                held = await self._backend.holders(f"{tenant_id}:{limit.value}")
                out.append(QuotaStatus(limit.value, ceiling, held, "concurrent", None))
            elif limit in RATES:
                out.append(QuotaStatus(limit.value, ceiling, None, "second", None))
            elif limit in COUNTED:
                used = await self._counted(tenant_id, limit)
                out.append(QuotaStatus(limit.value, ceiling, used, "total", None))
            else:
                out.append(QuotaStatus(limit.value, ceiling, None, "per_request", None))
        return out

    async def _counted(self, tenant_id: str, limit: Limit) -> float:
        """What the database holds now (reservations of requests in flight not included)."""
        # imported here: the gateway charges quotas and never reports these
        from control_plane.artifact.accounting import stored_bytes
        from control_plane.deployment.repository import DeploymentRepository

        async with self._db.sessionmaker() as session:
            if limit is Limit.STORAGE_GB:
                return await stored_bytes(session, tenant_id) / 1e9
            deployments = await DeploymentRepository(session, tenant_id).all()
        if limit is Limit.MAX_DEPLOYMENTS:
            return len(deployments)
        return sum(int(d.autoscaling["max_replicas"]) for d in deployments if d.mode == "dedicated")

    async def _monthly_used(self, tenant_id: str, limit: Limit, now: datetime) -> float:
        meter = METERED[limit]
        key = f"{tenant_id}:{meter.metric}:{month_label(now)}"
        used = await self._backend.used(key)
        if used is None:
            await self._seed(key, tenant_id, meter.metric, now)
            used = await self._backend.used(key) or 0
        return used / meter.per_limit_unit
