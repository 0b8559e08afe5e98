"""Deployments: the desired state is written here; the reconciler makes Ray match it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.service import record
from control_plane.auth.principal import Principal
from control_plane.db import after_commit
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
from control_plane.kit.ids import new_id
from control_plane.kit.pagination import PageParams
from control_plane.model import service as models
from control_plane.models import Deployment
from control_plane.plan.catalog import Limit
from control_plane.services import Services
from control_plane.tenant.service import own_tenant


async def create(
    services: Services, session: AsyncSession, principal: Principal, data: DeploymentCreate
) -> Deployment:
    tenant_id = own_tenant(principal, "deployments")
    _cluster_or_503(services)
    if data.preprocess_plugin or data.postprocess_plugin:
        raise ValidationFailed("pre/post-processing plugins are not available yet")
    model = await models.get(session, principal, data.model_id)
    traffic = [t.model_dump() for t in data.traffic or []]
    await resolve(session, tenant_id, model.id, traffic)
    repo = DeploymentRepository(session, tenant_id)
    if await repo.by_name(data.name) is not None:
        raise Conflict(f"a deployment named '{data.name}' already exists", extra={"field": "name"})
    fields = data.model_dump(include={"mode", "resources", "autoscaling", "batching"})
    deployment = Deployment(
        id=new_id("dep"),
        tenant_id=tenant_id,
        name=data.name,
        model_id=model.id,
        traffic=traffic,
        max_queued_requests=data.max_queued_requests,
        timeout_ms=await _timeout_ms(services, tenant_id, data),
        status="pending",
        created_by=principal.user_id,
        **fields,
    )
    await within_plan(services, session, deployment, before=None)
    repo.add(deployment)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a deployment named '{data.name}' already exists") from None
    record(
        session,
        actor=principal,
        action="deployment.create",
        tenant_id=tenant_id,
        target=("deployment", deployment.id),
        details={"name": deployment.name, "mode": deployment.mode, "traffic": traffic},
    )
    after_commit(session, services.reconciler.wake)
    return deployment


async def update(
    services: Services,
    session: AsyncSession,
    principal: Principal,
    deployment_id: str,
    data: DeploymentUpdate,
) -> Deployment:
    _cluster_or_503(services)
    deployment = await get(session, principal, deployment_id)
    before = capacity(deployment)
    changes = data.model_dump(exclude_unset=True, exclude_none=True, exclude={"version", "alias"})
    if data.traffic is not None:
        changes["traffic"] = [t.model_dump() for t in data.traffic]
        await resolve(session, deployment.tenant_id, deployment.model_id, changes["traffic"])
    for field, value in changes.items():
        setattr(deployment, field, value)
    await within_plan(services, session, deployment, before=before)
    deployment.generation += 1
    deployment.status = "updating" if deployment.status == "ready" else "pending"
    deployment.error = None
    record(
        session,
        actor=principal,
        action="deployment.update",
        tenant_id=deployment.tenant_id,
        target=("deployment", deployment.id),
        details=changes,
    )
    after_commit(session, services.reconciler.wake)
    return deployment


async def delete(
    services: Services, session: AsyncSession, principal: Principal, deployment_id: str
) -> None:
    """Forget the deployment; the reconciler removes it from Ray, freeing its resources."""
    deployment = await get(session, principal, deployment_id)
    await DeploymentRepository(session, deployment.tenant_id).delete(deployment)
    record(
        session,
        actor=principal,
        action="deployment.delete",
        tenant_id=deployment.tenant_id,
        target=("deployment", deployment.id),
        details={"name": deployment.name},
    )
    after_commit(session, services.reconciler.wake)


async def get(session: AsyncSession, principal: Principal, deployment_id: str) -> Deployment:
    repo = DeploymentRepository(session, own_tenant(principal, "deployments"))
    deployment = await repo.get(deployment_id)
    if deployment is None:
        raise NotFound("deployment not found")
    return deployment


async def list_page(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[Sequence[Deployment], str | None]:
    return await DeploymentRepository(session, own_tenant(principal, "deployments")).page(params)


async def read(services: Services, session: AsyncSession, deployment: Deployment) -> DeploymentRead:
    try:
        resolved = await resolve(
            session, deployment.tenant_id, deployment.model_id, deployment.traffic
        )
    except (NotFound, Conflict):
        resolved = []
    serve = services.settings.serve_url
    return DeploymentRead.model_validate(
        {
            **{
                f: getattr(deployment, f)
                for f in DeploymentRead.model_fields
                if hasattr(deployment, f)
            },
            "resolved": [_resolved(r) for r in resolved],
            "endpoints": {
                "v2": f"{serve}/v2/models/{deployment.name}/infer",
                "v1": f"{serve}/v1/models/{deployment.name}:predict",
            },
        }
    )


def _resolved(target: Resolved) -> ResolvedTarget:
    return ResolvedTarget(version=target.version, weight=target.weight, alias=target.alias)


async def _timeout_ms(services: Services, tenant_id: str, data: DeploymentCreate) -> int:
    """The deadline asked for; left out, the default, or the plan's cap when lower."""
    if "timeout_ms" in data.model_fields_set:
        return data.timeout_ms
    cap = (await services.quotas.limits(tenant_id)).get(Limit.MAX_PREDICTION_TIMEOUT_MS)
    return data.timeout_ms if cap is None else max(MIN_TIMEOUT_MS, min(data.timeout_ms, int(cap)))


def _cluster_or_503(services: Services) -> None:
    if not services.cluster.configured:
        raise ClusterUnavailable(
            "no Ray cluster is configured for this server (start it with `atrium up`,"
            " or set ATRIUM_RAY_DASHBOARD_URL)"
        )
