from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.kit.deps import Authorize, ServicesDep
from control_plane.tenant.service import own_tenant

router = APIRouter(prefix="/api/v1/quotas", tags=["usage"])


class QuotaRead(BaseModel):
    name: str
    limit: float | None
    used: float | None
    period: str
    resets_at: datetime | None


class QuotaList(BaseModel):
    plan: str
    items: list[QuotaRead]


@router.get("", response_model=QuotaList)
async def list_(
    services: ServicesDep, me: Annotated[Principal, Authorize(Action.USAGE_READ)]
) -> QuotaList:
    """Each quota of the caller's tenant: its limit (null: unlimited), use and reset time."""
    tenant_id = own_tenant(me, "quotas")
    limits = await services.quotas.limits(tenant_id)
    items = [QuotaRead(**vars(q)) for q in await services.quotas.status(tenant_id)]
    return QuotaList(plan=limits.plan.name, items=items)
