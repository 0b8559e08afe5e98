from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from control_plane.kit.schemas import InputSchema, Name, ReadSchema
from control_plane.model.schemas import ALIAS_PATTERN

Mode = Literal["shared", "dedicated"]
DEFAULT_TIMEOUT_MS, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS = 30_000, 10, 600_000


class Target(InputSchema):
    """A version number or an alias of the deployment's model, and its share of traffic."""

    version: int | None = Field(None, ge=1)
    alias: str | None = Field(None, pattern=ALIAS_PATTERN)
    weight: int = Field(100, ge=0, le=100, description="Percent of requests.")

    @model_validator(mode="after")
    def _one_of(self) -> Target:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give either a version or an alias")
        return self


class Resources(InputSchema):
    num_cpus: float = Field(1.0, gt=0, le=64, description="CPUs per replica (dedicated).")
    num_gpus: float = Field(0.0, ge=0, le=8, description="GPUs per replica (dedicated).")


class Autoscaling(InputSchema):
    min_replicas: int = Field(1, ge=0, le=100)
    max_replicas: int = Field(1, ge=1, le=100)
    target_ongoing_requests: float = Field(
        2.0, gt=0, description="Requests per replica that autoscaling aims at."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class Batching(InputSchema):
    max_batch_size: int = Field(32, ge=1, le=4096, description="Rows of one model per batch.")
    batch_wait_timeout_ms: float = Field(
        5.0, ge=0, le=1000, description="How long a partial batch waits for more rows."
    )


class _Shape(InputSchema):
    mode: Mode = "shared"
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    batching: Batching = Field(default_factory=Batching)
    max_queued_requests: int = Field(
        100, ge=1, le=100_000, description="Beyond this many waiting requests: 503."
    )
    timeout_ms: int = Field(
        DEFAULT_TIMEOUT_MS,
        ge=MIN_TIMEOUT_MS,
        le=MAX_TIMEOUT_MS,
        description="Each prediction's deadline; past it: 504 prediction_timeout. At most the "
        "plan's max_prediction_timeout_ms (left out: 30000, or that cap when lower).",
    )


class DeploymentCreate(_Shape):
    name: Name
    model_id: str
    version: int | None = Field(None, ge=1, description="Serve this version …")
    alias: str | None = Field(
        None, pattern=ALIAS_PATTERN, description="… or what this alias names."
    )
    traffic: list[Target] | None = Field(
        None, min_length=1, max_length=10, description="Or split traffic by weight (sum 100)."
    )
    preprocess_plugin: str | None = None
    postprocess_plugin: str | None = None

    @model_validator(mode="after")
    def _targets(self) -> DeploymentCreate:
        self.traffic = targets_of(self.version, self.alias, self.traffic)
        return self


class DeploymentUpdate(InputSchema):
    version: int | None = Field(None, ge=1)
    alias: str | None = Field(None, pattern=ALIAS_PATTERN)
    traffic: list[Target] | None = Field(None, min_length=1, max_length=10)
    mode: Mode | None = None
    resources: Resources | None = None
    autoscaling: Autoscaling | None = None
    batching: Batching | None = None
    max_queued_requests: int | None = Field(None, ge=1, le=100_000)
    timeout_ms: int | None = Field(
        None, ge=MIN_TIMEOUT_MS, le=MAX_TIMEOUT_MS, description="Each prediction's deadline."
    )

    @model_validator(mode="after")
    def _targets(self) -> DeploymentUpdate:
        if self.version is not None or self.alias is not None or self.traffic is not None:
            self.traffic = targets_of(self.version, self.alias, self.traffic)
        return self


def targets_of(
    version: int | None, alias: str | None, traffic: list[Target] | None
) -> list[Target]:
    given = [x for x in (version, alias, traffic) if x is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of version, alias or traffic")
    if traffic is None:
        return [Target(version=version, alias=alias, weight=100)]
    if sum(t.weight for t in traffic) != 100:
        raise ValueError("traffic weights must add up to 100")
    return traffic


class ResolvedTarget(ReadSchema):
    version: int
    weight: int
    alias: str | None = None


class DeploymentRead(ReadSchema):
    id: str
    name: str
    model_id: str
    mode: Mode
    traffic: list[Target]
    resolved: list[ResolvedTarget] = Field(description="Versions served now, by weight.")
    resources: Resources
    autoscaling: Autoscaling
    batching: Batching
    max_queued_requests: int
    timeout_ms: int = Field(description="Each prediction's deadline; past it: 504.")
    status: Literal["pending", "ready", "failed", "updating"]
    error: str | None
    endpoints: dict[str, str] = Field(description="Where to send requests (Serve port).")
    created_by: str
    created_at: datetime
    updated_at: datetime
