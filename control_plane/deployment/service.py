"""Deployments: the desired state is written here; the reconciler makes Ray match it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cluster.rest import RayRest
from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.db import Database
from control_plane.deployment.limits import capacity, within_plan
from control_plane.deployment.repository import DeploymentRepository
from control_plane.deployment.schemas import (
    MIN_TIMEOUT_MS,
    DeploymentCreate,
    DeploymentRead,
    DeploymentUpdate,
    ResolvedTarget,
)
from control_plane.deployment.targets import Resolved, resolve
from control_plane.errors import (
    ClusterUnavailable,
    Conflict,
    NotFound,
    ValidationFailed,
)
from control_plane.kit.hooks import after_commit
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.model import service as models
from control_plane.models import Deployment, Model
from control_plane.plan.catalog import Limit
from control_plane.quota.service import Quotas

if TYPE_CHECKING:
    from control_plane.deployment.reconciler import Reconciler


async def create(
    session: AsyncSession,
    tenant_id: str,
    data: DeploymentCreate,
    *,
    actor: Principal,
    cluster: RayRest,
    quotas: Quotas,
    db: Database,
    reconciler: Reconciler,
) -> Deployment:
    _cluster_or_503(cluster)
    if data.preprocess_plugin or data.postprocess_plugin:
        raise ValidationFailed("pre/post-processing plugins are not available yet")
    model = await models.get(session, tenant_id, data.model_id)
    traffic = [t.model_dump() for t in data.traffic or []]
    await resolve(session, tenant_id, model.id, traffic)
    repo = DeploymentRepository(session, tenant_id)
    if await repo.by_name(data.name) is not None:
        raise Conflict(f"a deployment named '{data.name}' already exists", extra={"field": "name"})
    timeout_ms = await _timeout_ms(quotas, tenant_id, data)
    deployment = _new(model, data, traffic, timeout_ms=timeout_ms, actor=actor)
    await within_plan(session, deployment, before=None, quotas=quotas, db=db)
    repo.add(deployment)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a deployment named '{data.name}' already exists") from None
    record(
        session,
        actor=actor,
        action="deployment.create",
        tenant_id=tenant_id,
        target=("deployment", deployment.id),
        details={"name": deployment.name, "mode": deployment.mode, "traffic": traffic},
    )
    after_commit(session, reconciler.wake)
    return deployment


def _new(
    model: Model,
    data: DeploymentCreate,
    traffic: list[dict[str, Any]],
    *,
    timeout_ms: int,
    actor: Principal,
) -> Deployment:
    fields = data.model_dump(include={"mode", "resources", "autoscaling", "batching"})
    return Deployment(
        id=new_id("dep"),
        tenant_id=model.tenant_id,
        name=data.name,
        model_id=model.id,
        traffic=traffic,
        max_queued_requests=data.max_queued_requests,
        timeout_ms=timeout_ms,
        status="pending",
        created_by=actor.user_id,
        **fields,
    )


async def update(
    session: AsyncSession,
    tenant_id: str,
    deployment_id: str,
    data: DeploymentUpdate,
    *,
    actor: Principal,
    cluster: RayRest,
    quotas: Quotas,
    db: Database,
    reconciler: Reconciler,
) -> Deployment:
    _cluster_or_503(cluster)
    deployment = await get(session, tenant_id, deployment_id)
    before = capacity(deployment)
    changes = data.model_dump(exclude_unset=True, exclude_none=True, exclude={"version", "alias"})
    if data.traffic is not None:
        changes["traffic"] = [t.model_dump() for t in data.traffic]
        await resolve(session, deployment.tenant_id, deployment.model_id, changes["traffic"])
    for field, value in changes.items():
        setattr(deployment, field, value)
    await within_plan(session, deployment, before=before, quotas=quotas, db=db)
    deployment.generation += 1
    deployment.status = "updating" if deployment.status == "ready" else "pending"
    deployment.error = None
    record(
        session,
        actor=actor,
        action="deployment.update",
        tenant_id=deployment.tenant_id,
        target=("deployment", deployment.id),
        details=changes,
    )
    after_commit(session, reconciler.wake)
    return deployment


async def delete(
    session: AsyncSession,
    tenant_id: str,
    deployment_id: str,
    *,
    actor: Principal,
    reconciler: Reconciler,
) -> None:
    """Forget the deployment; the reconciler removes it from Ray, freeing its resources."""
    deployment = await get(session, tenant_id, deployment_id)
    await DeploymentRepository(session, deployment.tenant_id).delete(deployment)
    record(
        session,
        actor=actor,
        action="deployment.delete",
        tenant_id=deployment.tenant_id,
        target=("deployment", deployment.id),
        details={"name": deployment.name},
    )
    after_commit(session, reconciler.wake)


async def get(session: AsyncSession, tenant_id: str, deployment_id: str) -> Deployment:
    deployment = await DeploymentRepository(session, tenant_id).get(deployment_id)
    if deployment is None:
        raise NotFound("deployment not found")
    return deployment


async def list_page(
    session: AsyncSession, tenant_id: str, params: PageParams
) -> tuple[Sequence[Deployment], str | None]:
    return await DeploymentRepository(session, tenant_id).page(params)


async def read(session: AsyncSession, deployment: Deployment, *, serve_url: str) -> DeploymentRead:
    try:
        resolved = await resolve(
            session, deployment.tenant_id, deployment.model_id, deployment.traffic
        )
    except (NotFound, Conflict):
        resolved = []
    return DeploymentRead.model_validate(
        {
            **{
                f: getattr(deployment, f)
                for f in DeploymentRead.model_fields
                if hasattr(deployment, f)
            },
            "resolved": [_resolved(r) for r in resolved],
            "endpoints": {
                "v2": f"{serve_url}/v2/models/{deployment.name}/infer",
                "v1": f"{serve_url}/v1/models/{deployment.name}:predict",
            },
        }
    )


def _resolved(target: Resolved) -> ResolvedTarget:
    return ResolvedTarget(version=target.version, weight=target.weight, alias=target.alias)


async def _timeout_ms(quotas: Quotas, tenant_id: str, data: DeploymentCreate) -> int:
    """The deadline asked for; left out, the default, or the plan's cap when lower."""
    if "timeout_ms" in data.model_fields_set:
        return data.timeout_ms
    cap = (await quotas.limits(tenant_id)).get(Limit.MAX_PREDICTION_TIMEOUT_MS)
    return data.timeout_ms if cap is None else max(MIN_TIMEOUT_MS, min(data.timeout_ms, int(cap)))


def _cluster_or_503(cluster: RayRest) -> None:
    if not cluster.configured:
        raise ClusterUnavailable(
            "no Ray cluster is configured for this server (start it with `atrium up`,"
            " or set ATRIUM_RAY_DASHBOARD_URL)"
        )
