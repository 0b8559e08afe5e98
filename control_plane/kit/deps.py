"""Dependencies every route uses: the session, the services, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.admission import Admission
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.errors import Forbidden
from control_plane.kit.peers import bearer_matches, peer_in
from control_plane.plan.catalog import Limit
from control_plane.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_services(request).db.session_scope() as session:
        yield session


# scope="function": commit before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def Authorize(action: Action) -> Any:
    """The caller, who must hold ``action``; the route's declared permission."""

    async def authorized(request: Request, response: Response) -> Principal:
        services = get_services(request)
        admitted = await Admission(services.authenticator, services.quotas).admit(
            request.headers.get("authorization"), action, rate=Limit.API_RPS
        )
        response.headers.update(admitted.headers)
        return admitted.principal

    authorized.required_action = action  # type: ignore[attr-defined]
    return Depends(authorized)


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


# On routes whose responses carry secrets (tokens, keys, signing secrets): no cache,
# shared or the browser's, keeps a copy. `dependencies=[..., NoStore]`.
NoStore: Any = Depends(_no_store)


def Public() -> Any:
    """Marks a route open to anyone (its handler checks what it must itself)."""

    async def public() -> None:
        return None

    public.required_action = None  # type: ignore[attr-defined]
    return Depends(public)


def Internal() -> Any:
    """Marks a route for Atrium's own Serve replicas: they present the internal token
    (a secret of the deployment, never given to tenants)."""

    async def internal(request: Request) -> None:
        services = get_services(request)
        if not peer_in(request, services.settings.internal_networks):
            raise Forbidden(
                "this route answers only the networks in ATRIUM_INTERNAL_NETWORKS "
                "(loopback by default), never through a proxy"
            )
        if not bearer_matches(request.headers.get("authorization"), services.internal_token):
            raise Forbidden("this route is for Atrium's own services")

    internal.required_action = "internal"  # type: ignore[attr-defined]
    return Depends(internal)
