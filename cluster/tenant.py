"""Tenant Ray clusters: each tenant's custom Ray code runs on a Ray cluster of its own.

Ray has no tenants: anything that runs on a cluster owns it (its token, its GCS, every
actor). So a tenant's jobs never run on the platform's cluster; each tenant gets one of
its own, and the control plane is the only door to it (it holds the cluster's token;
the tenant never sees it). One interface, two backends: ``LocalClusters`` (a sandboxed
Ray head per tenant on this machine, ``cluster/tenant_local.py``) and KubeRay (a
``RayCluster`` per tenant in a namespace of its own, ``cluster/kuberay.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ClusterStatus(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


@dataclass(frozen=True)
class ClusterShape:
    """What a tenant's cluster may use, from its plan: Ray resources and real caps."""

    tenant_id: str
    cpus: float
    gpus: int = 0
    memory_mb: int = 4096
    idle_minutes: int = 30


@dataclass(frozen=True)
class ClusterInfo:
    """One tenant's cluster as the control plane sees it. ``address`` is the head's
    dashboard (Jobs API) URL, reached through the Unix socket ``socket`` when one is
    given (a head with no network of its own), and ``token`` its Ray auth token: all
    stay in the control plane."""

    tenant_id: str
    status: ClusterStatus
    shape: ClusterShape | None = None
    address: str | None = None
    token: str | None = field(default=None, repr=False)
    socket: str | None = None
    started_at: datetime | None = None
    error: str | None = None


class ClusterUnavailableError(RuntimeError):
    """The tenant's cluster cannot be started; the message says why."""


class TenantClusters(ABC):
    """Start, find and stop tenants' clusters."""

    @abstractmethod
    async def ensure(self, shape: ClusterShape) -> ClusterInfo:
        """The tenant's running cluster, started (and waited for) when it is not."""

    @abstractmethod
    async def info(self, tenant_id: str) -> ClusterInfo:
        """Its state now, without starting anything (a dead head reads ``failed``)."""

    @abstractmethod
    async def stop(self, tenant_id: str) -> None:
        """Stop it (nothing happens when it is not running)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop every cluster this process started."""
