"""Dependencies every route uses: the session, the services, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.errors import Forbidden
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

    async def authorized(request: Request) -> Principal:
        services = get_services(request)
        principal = await services.authenticator.authenticate(request.headers.get("authorization"))
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
