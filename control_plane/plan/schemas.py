from __future__ import annotations

from pydantic import Field

from control_plane.kit.schemas import InputSchema
from control_plane.plan.catalog import Limit, Plan


class PlanChange(InputSchema):
    plan: str = Field(min_length=1, max_length=40, description="A plan from GET /plans.")


class LimitOverrides(InputSchema):
    limits: dict[Limit, float | None] = Field(
        description="Replaces the tenant's overrides: a number, or null for unlimited. "
        "Limits left out follow the plan."
    )


class EffectiveLimits(InputSchema):
    plan: str
    limits: dict[str, float | None]
    overrides: dict[str, float | None]


class PlanList(InputSchema):
    currency: str
    items: list[Plan]
