"""Every route declares the action it needs (or that it is public), exactly once."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from control_plane.app import ROUTERS, create_app
from control_plane.auth.permissions import ROLE_ACTIONS, SCOPE_ACTIONS, Action, Role
from control_plane.deps import Authorize, Internal, Public
from tests.support import make_settings

MISSING = object()


def _declared(dependant: Dependant) -> list[Any]:
    """The typed permission objects a route depends on: the action of an ``Authorize``,
    None for ``Public``, "internal" for ``Internal``."""
    found: list[Any] = []
    match dependant.call:
        case Authorize(action=action):
            found.append(action)
        case Public():
            found.append(None)
        case Internal():
            found.append("internal")
    for sub in dependant.dependencies:
        found.extend(_declared(sub))
    return found


def test_every_route_declares_one_action(tmp_path: Any) -> None:
    app = create_app(make_settings(tmp_path, "sqlite+aiosqlite:///:memory:"))
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    operations = sum(len(ops) for ops in app.openapi()["paths"].values())
    assert len(routes) == operations > 15  # the walk sees every route the app serves
    undeclared = {
        f"{sorted(r.methods or ())} {r.path_format}": _declared(r.dependant) for r in routes
    }
    assert {k: v for k, v in undeclared.items() if len(v) != 1} == {}
    internal = {k for k, v in undeclared.items() if v == ["internal"]}
    assert internal == {
        "['GET'] /internal/v1/model-versions/{version_id}",
        "['GET'] /internal/v1/model-versions/{version_id}/artifact",
    }
    public = {k for k, v in undeclared.items() if v == [None]}
    assert public == {
        "['GET'] /healthz",
        "['GET'] /readyz",
        "['GET'] /metrics",
        "['GET'] /.well-known/jwks.json",
        "['POST'] /api/v1/auth/token",
        "['POST'] /api/v1/auth/refresh",
        # a sign-in ticket, and the dashboard's cookie (or a key with jobs:read), checked inside
        "['GET'] /api/v1/ray/dashboard/login",
        "['GET'] /api/v1/ray/dashboard/{path}",
    }


def test_roles_nest_and_key_scopes_are_reachable() -> None:
    order = [Role.VIEWER, Role.DEVELOPER, Role.ADMIN, Role.OWNER]
    for lower, higher in itertools.pairwise(order):
        assert ROLE_ACTIONS[lower] < ROLE_ACTIONS[higher]
    every_scope_action = frozenset().union(*SCOPE_ACTIONS.values())
    assert every_scope_action <= ROLE_ACTIONS[Role.OWNER]
    # keys can never administer people or tenants
    assert not every_scope_action & {Action.USERS_WRITE, Action.TENANTS_ADMIN, Action.AUDIT_READ}
    assert Action.TENANTS_ADMIN not in ROLE_ACTIONS[Role.OWNER]
