"""Ray, as the control plane sees it: the dashboard's REST API (Serve declarative
config) with Ray's auth token. The only code besides ``cluster/local.py`` that talks
to Ray; it imports no Ray itself."""

from __future__ import annotations

from typing import Any

import httpx

SERVE = "/api/serve/applications/"


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

    async def applications(self) -> dict[str, Any]:
        """Each Serve application's status, message and deployments."""
        body = await self._call("GET", SERVE)
        apps: dict[str, Any] = (body or {}).get("applications") or {}
        return apps

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
