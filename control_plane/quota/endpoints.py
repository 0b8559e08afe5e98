from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.errors import Forbidden
from control_plane.kit.deps import Authorize, ServicesDep

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
    if me.tenant_id is None:
        raise Forbidden("quotas belong to tenants")
    limits = await services.quotas.limits(me.tenant_id)
    items = [QuotaRead(**vars(q)) for q in await services.quotas.status(me.tenant_id)]
    return QuotaList(plan=limits.plan.name, items=items)
