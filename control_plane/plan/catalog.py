"""The plan catalogue: data in plans.yaml (shipped in this package; ATRIUM_PLANS_FILE names
another), validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PLAN = "free"


class Limit(StrEnum):
    INFERENCE_RPS = "inference_rps"
    API_RPS = "api_rps"
    MONTHLY_PREDICTIONS = "monthly_predictions"
    MONTHLY_CPU_HOURS = "monthly_cpu_hours"
    MONTHLY_GPU_HOURS = "monthly_gpu_hours"
    MAX_CONCURRENT_JOBS = "max_concurrent_jobs"
    MAX_DEPLOYMENTS = "max_deployments"
    MAX_DEDICATED_REPLICAS = "max_dedicated_replicas"
    MAX_CPUS_PER_DEPLOYMENT = "max_cpus_per_deployment"
    MAX_GPUS_PER_DEPLOYMENT = "max_gpus_per_deployment"
    MAX_GPUS_PER_JOB = "max_gpus_per_job"
    MONTHLY_PLUGIN_EXECUTIONS = "monthly_plugin_executions"
    STORAGE_GB = "storage_gb"
    MAX_UPLOAD_MB = "max_upload_mb"
    MAX_PREDICTION_TIMEOUT_MS = "max_prediction_timeout_ms"
    MAX_WEBHOOKS = "max_webhooks"
    MAX_CLUSTER_CPUS = "max_cluster_cpus"
    MAX_CLUSTER_GPUS = "max_cluster_gpus"
    CLUSTER_IDLE_MINUTES = "cluster_idle_minutes"


@dataclass(frozen=True)
class Meter:
    """How a monthly quota is metered: the ledger metric, its unit, and how many of
    those units make one unit of the plan's limit (an hour is 3600 seconds)."""

    metric: str
    unit: str
    per_limit_unit: int = 1


METERED: dict[Limit, Meter] = {
    Limit.MONTHLY_PREDICTIONS: Meter("predictions", "predictions"),
    Limit.MONTHLY_CPU_HOURS: Meter("cpu_seconds", "seconds", 3600),
    Limit.MONTHLY_GPU_HOURS: Meter("gpu_seconds", "seconds", 3600),
    Limit.MONTHLY_PLUGIN_EXECUTIONS: Meter("plugin_executions", "executions"),
}
RATES = (Limit.INFERENCE_RPS, Limit.API_RPS)
CONCURRENCY = (Limit.MAX_CONCURRENT_JOBS,)
# what the database holds, reserved while requests add to it (``quota.reservation``)
COUNTED = (Limit.STORAGE_GB, Limit.MAX_DEPLOYMENTS, Limit.MAX_DEDICATED_REPLICAS)

Amount = Annotated[float | None, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Every limit must be given; null means unlimited."""

    inference_rps: Amount
    api_rps: Amount
    monthly_predictions: Amount
    monthly_cpu_hours: Amount
    monthly_gpu_hours: Amount
    max_concurrent_jobs: Amount
    max_deployments: Amount
    max_dedicated_replicas: Amount
    max_cpus_per_deployment: Amount = Field(
        description="num_cpus x max_replicas of one dedicated deployment."
    )
    max_gpus_per_deployment: Amount = Field(
        description="num_gpus x max_replicas of one dedicated deployment."
    )
    max_gpus_per_job: Amount
    monthly_plugin_executions: Amount
    storage_gb: Amount
    max_upload_mb: Amount
    max_prediction_timeout_ms: Amount
    max_webhooks: Amount
    max_cluster_cpus: Amount = Field(
        description="CPUs of the tenant's own Ray cluster (Ray resources and a real cap)."
    )
    max_cluster_gpus: Amount = Field(description="GPUs of the tenant's own Ray cluster.")
    cluster_idle_minutes: Amount = Field(
        description="The tenant's Ray cluster stops after this long with no job and no call."
    )

    def get(self, limit: Limit) -> float | None:
        value: float | None = getattr(self, limit.value)
        return value


class Overage(_Strict):
    cents: Decimal = Field(ge=0, description="Price in cents for every `per` units.")
    per: Decimal = Field(gt=0)


class Plan(_Strict):
    name: str = ""
    title: str
    price_cents: int = Field(ge=0, description="Monthly base price.")
    limits: Limits
    included: dict[Limit, float] = Field(default_factory=dict)
    overage: dict[Limit, Overage] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _metered_only(self) -> Plan:
        for field in ("included", "overage"):
            wrong = [k.value for k in getattr(self, field) if k not in METERED]
            if wrong:
                raise ValueError(f"{field}: only monthly metered limits allowed, not {wrong}")
        return self


class Catalog(_Strict):
    currency: str = Field(pattern=r"^[a-z]{3}$")
    plans: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")], Plan]

    @model_validator(mode="after")
    def _named(self) -> Catalog:
        if DEFAULT_PLAN not in self.plans:
            raise ValueError(f"plans: the default plan '{DEFAULT_PLAN}' is missing")
        for name, plan in self.plans.items():
            object.__setattr__(plan, "name", name)
        return self

    def get(self, name: str) -> Plan | None:
        return self.plans.get(name)


class CatalogError(ValueError):
    """The plans file is unreadable or invalid; the message names the field."""


def load_catalog(path: Path) -> Catalog:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read plans from {path}: {exc}") from None
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise CatalogError(f"invalid plans in {path}: {problems}") from None
