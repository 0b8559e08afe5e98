"""The tenant cluster's Ray dashboard, proxied at ``/api/v1/ray/dashboard/``.

A browser cannot send an API key on every request, and the key must not live in a
cookie. So an authenticated call (``jobs:read``) asks for a sign-in link,
``POST /api/v1/ray/dashboard/session``, which holds a one-minute ticket; opening it sets
a short-lived cookie bound to the tenant (HttpOnly, SameSite=Strict, this path only)
and leads to the dashboard. Every proxied request carries the cluster's token, added
here; neither the token nor the cookie reaches the other side. The dashboard's own
token prompt never shows: its ``/api/authentication_mode`` is answered "disabled",
since the proxy authenticates.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from cluster.tenant import ClusterStatus
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, NoStore, Public, get_services, member
from control_plane.errors import NotFound, Unauthorized, responses
from control_plane.job.passes import PREFIX
from control_plane.job.ray_api import ClustersDep, forward, reader_tenant

COOKIE = "atrium_ray_dashboard"
TICKET_S = 60
SESSION_S = 15 * 60
# where the sign-in lands: only a page of the dashboard (a hash route), never another URL
PAGE = r"^#/[A-Za-z0-9/_-]*$"

router = APIRouter(prefix=PREFIX, tags=["ray dashboard"])
Reader = Annotated[Principal, Depends(Authorize(Action.JOBS_READ, "tenant_member"))]


class DashboardLink(BaseModel):
    url: str
    expires_in: int


@router.post(
    "/session",
    response_model=DashboardLink,
    dependencies=[NoStore],
    responses=responses(*SIGNED_IN),
    summary="A one-minute sign-in link to the tenant cluster's Ray dashboard",
)
async def session(me: Reader, request: Request) -> DashboardLink:
    """Open `url` in a browser: it sets a 15-minute cookie for this tenant's dashboard."""
    passes = get_services(request).dashboard_passes
    ticket = passes.issue("ticket", member(me), me.api_key_id or me.user_id)
    base = str(request.base_url).rstrip("/")
    return DashboardLink(url=f"{base}{PREFIX}/login?ticket={ticket}", expires_in=TICKET_S)


@router.get(
    "/login",
    dependencies=[Depends(Public()), NoStore],
    responses=responses(Unauthorized),
    response_class=RedirectResponse,
    status_code=303,
    summary="Exchange a sign-in ticket for the dashboard's cookie",
)
async def login(
    ticket: str,
    request: Request,
    page: Annotated[
        str,
        Query(
            alias="next",
            pattern=PAGE,
            description="The dashboard page to land on, a hash route such as `#/jobs`.",
        ),
    ] = "",
) -> RedirectResponse:
    """Set the dashboard's cookie from a sign-in ticket and lead to the dashboard."""
    passes = get_services(request).dashboard_passes
    tenant_id = passes.check("ticket", ticket, TICKET_S)
    answer = RedirectResponse(f"{PREFIX}/{page}", status_code=303)
    answer.set_cookie(
        COOKIE,
        passes.issue("session", tenant_id, "cookie"),
        max_age=SESSION_S,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.get(
    "/{path:path}",
    dependencies=[Depends(Public())],  # a key, a token or the session cookie: see _tenant
    responses=responses(Unauthorized, NotFound),
    summary="The tenant cluster's Ray dashboard, read-only (pages and the calls they make)",
)
async def dashboard(path: str, request: Request, clusters: ClustersDep) -> Response:
    tenant_id = await _tenant(request)
    if path == "api/authentication_mode":
        return JSONResponse({"authentication_mode": "disabled"})  # the proxy authenticates
    info = await clusters.info(tenant_id)
    if info.status is not ClusterStatus.RUNNING:
        raise NotFound(
            "the tenant's Ray cluster is not running: start it (POST /api/v1/cluster/start) "
            "or submit a job"
        )
    clusters.touch(tenant_id)
    answer = await forward(clusters, info, request, f"/{path}")
    # its pages are served from our origin: never framed by another
    answer.headers["X-Frame-Options"] = "DENY"
    answer.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    answer.headers["Cache-Control"] = "private, no-store" if path.startswith("api") else "private"
    return answer


async def _tenant(request: Request) -> str:
    """Whose dashboard: the caller's API key or token (`jobs:read`), or a browser's cookie."""
    services = get_services(request)
    authorization = request.headers.get("authorization")
    if authorization is None:
        return services.dashboard_passes.check("session", request.cookies.get(COOKIE), SESSION_S)
    return await reader_tenant(request, authorization)
