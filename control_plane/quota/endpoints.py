from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, QuotasDep, member
from control_plane.errors import ValidationFailed, responses

router = APIRouter(
    prefix="/api/v1/quotas",
    tags=["usage"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)


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
    quotas: QuotasDep,
    me: Annotated[Principal, Depends(Authorize(Action.USAGE_READ, "tenant_member"))],
) -> QuotaList:
    """Each quota of the caller's tenant: its limit (null: unlimited), use and reset time."""
    tenant_id = member(me)
    limits = await quotas.limits(tenant_id)
    items = [QuotaRead(**vars(q)) for q in await quotas.status(tenant_id)]
    return QuotaList(plan=limits.plan.name, items=items)
