"""The OpenAPI document says how to authenticate: a bearer scheme (an access token or
an API key), required by every route that declares an ``Authorize`` permission, so
``/docs`` shows its Authorize button and a generated client knows what to send."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from control_plane.deps import Authorize

SCHEME = "bearer"


def install(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    guarded = {
        route.unique_id
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and _authorized(route.dependant)
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, guarded)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(app: FastAPI, guarded: set[str]) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    document.setdefault("components", {})["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token from POST /api/v1/auth/token, or an API key (atr_…).",
        }
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            if operation.get("operationId") in guarded:
                operation["security"] = [{SCHEME: []}]
    return document


def _authorized(dependant: Dependant) -> bool:
    if isinstance(dependant.call, Authorize):
        return True
    return any(_authorized(sub) for sub in dependant.dependencies)
