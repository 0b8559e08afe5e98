"""Ray, as the control plane sees it: the dashboard's REST API (Serve declarative
config) with Ray's auth token. The only code besides ``cluster/local.py`` that talks
to Ray; it imports no Ray itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

SERVE = "/api/serve/applications/"


class AppStatus(StrEnum):
    """A Serve application's status as Ray reports it (``UNKNOWN``: one this code does
    not know, from a newer Ray)."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> AppStatus:
        return cls.UNKNOWN

    @property
    def failed(self) -> bool:
        return self in (AppStatus.DEPLOY_FAILED, AppStatus.UNHEALTHY)


class DeploymentStatus(StrEnum):
    """A Serve deployment's status inside its application."""

    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> DeploymentStatus:
        return cls.UNKNOWN


class ReplicaState(StrEnum):
    """One replica's state."""

    STARTING = "STARTING"
    UPDATING = "UPDATING"
    RECOVERING = "RECOVERING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    PENDING_MIGRATION = "PENDING_MIGRATION"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> ReplicaState:
        return cls.UNKNOWN

    @property
    def up(self) -> bool:
        """Serving: running, or running and taking a new config."""
        return self in (ReplicaState.RUNNING, ReplicaState.UPDATING)


@dataclass(frozen=True, slots=True)
class ServeDeployment:
    status: DeploymentStatus = DeploymentStatus.UNKNOWN
    message: str = ""
    replicas: tuple[ReplicaState, ...] = ()


@dataclass(frozen=True, slots=True)
class Application:
    """A Serve application as the control plane reads it. One Ray does not report is
    ``NOT_STARTED``."""

    status: AppStatus = AppStatus.NOT_STARTED
    message: str = ""
    deployments: Mapping[str, ServeDeployment] = field(default_factory=dict)


def applications_of(body: Mapping[str, Any] | None) -> dict[str, Application]:
    """Ray's ``GET /api/serve/applications/`` answer, typed."""
    apps: Mapping[str, Any] = (body or {}).get("applications") or {}
    return {name: _application(app or {}) for name, app in apps.items()}


def _application(app: Mapping[str, Any]) -> Application:
    return Application(
        status=AppStatus(app.get("status") or AppStatus.UNKNOWN),
        message=app.get("message") or "",
        deployments={
            name: _deployment(d or {}) for name, d in (app.get("deployments") or {}).items()
        },
    )


def _deployment(deployment: Mapping[str, Any]) -> ServeDeployment:
    return ServeDeployment(
        status=DeploymentStatus(deployment.get("status") or DeploymentStatus.UNKNOWN),
        message=deployment.get("message") or "",
        replicas=tuple(
            ReplicaState(r.get("state") or ReplicaState.UNKNOWN)
            for r in deployment.get("replicas") or []
        ),
    )


class ClusterError(Exception):
    """Ray could not be reached, or refused the request; the message says which."""


class RayRest:
    def __init__(
        self, dashboard_url: str | None, token: str | None, *, timeout_s: float = 60
    ) -> None:
        self.dashboard_url = dashboard_url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = (
            httpx.AsyncClient(base_url=dashboard_url, headers=headers, timeout=timeout_s)
            if dashboard_url
            else None
        )

    @property
    def configured(self) -> bool:
        return self._http is not None

    async def apply(self, config: dict[str, Any]) -> None:
        """Replace the whole Serve config (applications not in it are removed)."""
        await self._call("PUT", SERVE, json=config)

    async def applications(self) -> dict[str, Application]:
        """Each Serve application's status, message and deployments."""
        return applications_of(await self._call("GET", SERVE))

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._http is None:
            raise ClusterError("no Ray cluster is configured")
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClusterError(
                f"Ray's dashboard at {self.dashboard_url} is unreachable: {exc}"
            ) from None
        if response.status_code >= 400:
            raise ClusterError(f"Ray answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
