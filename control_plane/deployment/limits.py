"""What the plan allows a tenant's deployments: how many, each prediction's deadline,
dedicated replicas in all, the CPUs and GPUs of one dedicated deployment, and no new
dedicated capacity once the month's CPU or GPU hours are used up.

Counts are reserved (``quota.reservation``) until the request's transaction ends, so
parallel creates and updates cannot together pass ``max_deployments`` or
``max_dedicated_replicas``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db import Database
from control_plane.deployment.repository import DeploymentRepository
from control_plane.errors import PlanLimitExceeded
from control_plane.kit.hooks import after_commit, after_rollback
from control_plane.models import Deployment
from control_plane.plan.catalog import Limit
from control_plane.quota.reservation import Base, reservation
from control_plane.quota.service import Quotas, TenantLimits


@dataclass(frozen=True)
class Capacity:
    """A deployment's dedicated capacity at its largest (shared ones have none)."""

    replicas: int = 0
    cpus: float = 0.0
    gpus: float = 0.0


def capacity(deployment: Deployment) -> Capacity:
    if deployment.mode != "dedicated":
        return Capacity()
    replicas = int(deployment.autoscaling["max_replicas"])
    resources = deployment.resources
    return Capacity(replicas, resources["num_cpus"] * replicas, resources["num_gpus"] * replicas)


@dataclass(frozen=True, slots=True)
class Counts:
    """Where a deployment's counts are checked: the plan, its reservations, and the
    deployments already committed (read in a transaction of their own)."""

    quotas: Quotas
    db: Database


async def within_plan(
    session: AsyncSession,
    deployment: Deployment,
    *,
    before: Capacity | None,
    quotas: Quotas,
    db: Database,
) -> None:
    """Refuse what the plan does not allow; ``before``: the capacity before an update
    (None: a new deployment)."""
    counts = Counts(quotas, db)
    limits = await quotas.limits(deployment.tenant_id)
    now = capacity(deployment)
    _deadline(limits, deployment)
    _resources(limits, deployment, now)
    await _hours_left(quotas, deployment.tenant_id, now, before or Capacity())
    if before is None:
        await _reserve_one(counts, session, deployment, limits)
    if now.replicas:
        await _reserve_replicas(counts, session, deployment, limits, now.replicas)


def _deadline(limits: TenantLimits, deployment: Deployment) -> None:
    cap = limits.get(Limit.MAX_PREDICTION_TIMEOUT_MS)
    if cap is not None and deployment.timeout_ms > cap:
        raise PlanLimitExceeded(
            f"the plan's max_prediction_timeout_ms is {cap:g}; "
            f"this deployment asks for timeout_ms {deployment.timeout_ms}",
            extra={"quota": Limit.MAX_PREDICTION_TIMEOUT_MS.value},
        )


def _resources(limits: TenantLimits, deployment: Deployment, now: Capacity) -> None:
    asked = {Limit.MAX_CPUS_PER_DEPLOYMENT: now.cpus, Limit.MAX_GPUS_PER_DEPLOYMENT: now.gpus}
    for limit, amount in asked.items():
        cap = limits.get(limit)
        if cap is not None and amount > cap:
            per = "num_cpus" if limit is Limit.MAX_CPUS_PER_DEPLOYMENT else "num_gpus"
            raise PlanLimitExceeded(
                f"the plan's {limit.value} is {cap:g}; this deployment asks for {amount:g}"
                f" ({per} {deployment.resources[per]:g} x max_replicas {now.replicas})",
                extra={"quota": limit.value},
            )


async def _hours_left(quotas: Quotas, tenant_id: str, now: Capacity, before: Capacity) -> None:
    """No new or larger dedicated deployment once the month's hours are used up (running
    ones go on, metered: see README, "Quotas and metering")."""
    if now.cpus > before.cpus:
        await quotas.ensure_left(
            tenant_id, Limit.MONTHLY_CPU_HOURS, refused="new or larger dedicated deployments"
        )
    if now.gpus > before.gpus:
        await quotas.ensure_left(
            tenant_id, Limit.MONTHLY_GPU_HOURS, refused="new or larger GPU deployments"
        )


async def _reserve_one(
    counts: Counts, session: AsyncSession, deployment: Deployment, limits: TenantLimits
) -> None:
    cap = limits.get(Limit.MAX_DEPLOYMENTS)

    async def committed() -> int:
        async with counts.db.sessionmaker() as fresh:
            return await DeploymentRepository(fresh, deployment.tenant_id).count()

    limit = Limit.MAX_DEPLOYMENTS
    if await _reserve(counts, session, deployment.tenant_id, limit, cap, 1, committed) is not None:
        raise PlanLimitExceeded(
            f"the plan allows {cap:g} deployments", extra={"quota": limit.value}
        )


async def _reserve_replicas(
    counts: Counts,
    session: AsyncSession,
    deployment: Deployment,
    limits: TenantLimits,
    replicas: int,
) -> None:
    cap = limits.get(Limit.MAX_DEDICATED_REPLICAS)

    async def others() -> int:
        async with counts.db.sessionmaker() as fresh:
            rows = await DeploymentRepository(fresh, deployment.tenant_id).all(
                Deployment.id != deployment.id, Deployment.mode == "dedicated"
            )
        return sum(int(d.autoscaling["max_replicas"]) for d in rows)

    limit = Limit.MAX_DEDICATED_REPLICAS
    used = await _reserve(counts, session, deployment.tenant_id, limit, cap, replicas, others)
    if used is not None:
        raise PlanLimitExceeded(
            f"the plan allows {cap:g} dedicated replicas in all; this would make {used + replicas}",
            extra={"quota": limit.value},
        )


async def _reserve(
    counts: Counts,
    session: AsyncSession,
    tenant_id: str,
    limit: Limit,
    cap: float | None,
    amount: int,
    base: Base,
) -> int | None:
    """Hold ``amount`` until the transaction ends; None if held, else what is used."""
    if cap is None:
        return None
    held = reservation(counts.quotas.backend, tenant_id, limit.value, cap=int(cap), base=base)
    after_commit(session, held.release)
    after_rollback(session, held.release)
    return None if await held.hold(amount) else held.used
