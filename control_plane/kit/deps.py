"""Dependencies every route uses: the session, the services, the caller."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.errors import Forbidden
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
        principal = await services.authenticator.authenticate(request.headers.get("authorization"))
        if principal.tenant_id is not None:  # each tenant's API calls share its API rate
            headers = await services.quotas.rate(
                principal.tenant_id,
                Limit.API_RPS,
                key_id=principal.api_key_id,
                key_rps=principal.key_rps,
            )
            response.headers.update(headers)
        if not principal.can(action):
            raise Forbidden(f"this action needs the '{action}' permission")
        return principal

    authorized.required_action = action  # type: ignore[attr-defined]
    return Depends(authorized)


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
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.encode(), services.internal_token.encode()
        ):
            raise Forbidden("this route is for Atrium's own services")

    internal.required_action = "internal"  # type: ignore[attr-defined]
    return Depends(internal)
