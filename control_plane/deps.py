"""What routes depend on: the session, one piece of the platform each (never the whole
``Services`` container), and who may call, as typed objects the OpenAPI document and
the route-permission test can read.

Each piece is an ``Annotated`` alias (``ArtifactsDep``, ``QuotasDep``, …): a route
asks for what it uses and passes exactly that to its service functions, which take a
session and keyword arguments (Polar's ``get_redis`` / ``license_key.service``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, Response
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from cluster.rest import RayRest
from cluster.sandbox import Sandbox
from control_plane.artifact.blobs import Storage
from control_plane.artifact.keys import DataKeys
from control_plane.artifact.store import ArtifactStore
from control_plane.auth.admission import Admission
from control_plane.auth.authenticator import Authenticator
from control_plane.auth.keyring import KeyRing
from control_plane.auth.passwords import Passwords
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.auth.proof import Proof
from control_plane.auth.throttle import LoginThrottle
from control_plane.auth.tokens import AccessTokens
from control_plane.auth.totp import SecretBox
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.deployment.reconciler import Reconciler
from control_plane.errors import (
    AtriumError,
    Forbidden,
    RateLimited,
    SandboxUnavailable,
    TenantSuspended,
    Unauthorized,
)
from control_plane.kit.invalidation import Invalidation
from control_plane.kit.peers import bearer_matches, peer_in
from control_plane.kit.slots import FairSlots
from control_plane.model.validation import Validator
from control_plane.observability import Metrics
from control_plane.plan.catalog import Catalog, Limit
from control_plane.quota.service import Quotas
from control_plane.services import Services
from control_plane.usage.recorder import UsageRecorder
from control_plane.webhook.dispatcher import Dispatcher


def get_services(request: HTTPConnection) -> Services:
    """The platform's parts, for an HTTP request or a WebSocket."""
    services: Services = request.app.state.services
    return services


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_services(request).db.session_scope() as session:
        yield session


# scope="function": commit before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def _piece(name: str) -> object:
    def get(request: Request) -> object:
        return getattr(get_services(request), name)

    get.__name__ = f"get_{name}"
    return Depends(get)


SettingsDep = Annotated[Settings, _piece("settings")]
DatabaseDep = Annotated[Database, _piece("db")]
KeyRingDep = Annotated[KeyRing, _piece("keyring")]
TokensDep = Annotated[AccessTokens, _piece("tokens")]
PasswordsDep = Annotated[Passwords, _piece("passwords")]
SecretBoxDep = Annotated[SecretBox, _piece("secrets")]
ThrottleDep = Annotated[LoginThrottle, _piece("throttle")]
InvalidationDep = Annotated[Invalidation, _piece("invalidation")]
AuthenticatorDep = Annotated[Authenticator, _piece("authenticator")]
MetricsDep = Annotated[Metrics, _piece("metrics")]
CatalogDep = Annotated[Catalog, _piece("catalog")]
UsageDep = Annotated[UsageRecorder, _piece("usage")]
QuotasDep = Annotated[Quotas, _piece("quotas")]
DispatcherDep = Annotated[Dispatcher, _piece("dispatcher")]
ArtifactsDep = Annotated[ArtifactStore, _piece("artifacts")]
DataKeysDep = Annotated[DataKeys, _piece("data_keys")]
ValidatorDep = Annotated[Validator, _piece("validator")]
ProbeSlotsDep = Annotated[FairSlots, _piece("probe_slots")]
ClusterDep = Annotated[RayRest, _piece("cluster")]
ReconcilerDep = Annotated[Reconciler, _piece("reconciler")]
RedisDep = Annotated[Redis | None, _piece("redis")]


def get_storage(
    db: DatabaseDep, store: ArtifactsDep, keys: DataKeysDep, quotas: QuotasDep
) -> Storage:
    """What an upload goes through (the store, its keys, the plan, the database)."""
    return Storage(db=db, store=store, keys=keys, quotas=quotas)


StorageDep = Annotated[Storage, Depends(get_storage)]


def get_proof(request: Request) -> Proof:
    """What checks a person's current password and MFA codes (``auth.proof``)."""
    services = get_services(request)
    return Proof(
        settings=services.settings,
        passwords=services.passwords,
        secrets=services.secrets,
        counters=services.counters,
    )


ProofDep = Annotated[Proof, Depends(get_proof)]


def require_sandbox(request: Request) -> Sandbox:
    """The sandbox for tenant files, or 503 ``sandbox_unavailable`` naming the fix."""
    sandbox = get_services(request).sandbox
    missing = sandbox.unavailable()
    if missing is not None:
        raise SandboxUnavailable(missing)
    return sandbox


SandboxDep = Annotated[Sandbox, Depends(require_sandbox)]

Subjects = Literal["any", "tenant_member"]
# What ``Authorize`` answers before a handler runs: ``responses(*SIGNED_IN, NotFound)``.
SIGNED_IN: tuple[type[AtriumError], ...] = (Unauthorized, TenantSuspended, Forbidden, RateLimited)


@dataclass(frozen=True, slots=True)
class Authorize:
    """A route's declared permission: the action it needs and the callers it admits
    (``tenant_member``: only someone of a tenant; the principal then always has a
    ``tenant_id``). ``Annotated[Principal, Depends(Authorize(Action.X))]``."""

    action: Action
    subjects: Subjects = "any"

    async def __call__(self, request: Request, response: Response) -> Principal:
        services = get_services(request)
        admitted = await Admission(services.authenticator, services.quotas).admit(
            request.headers.get("authorization"),
            self.action,
            rate=Limit.API_RPS,
            tenants_only=self.subjects == "tenant_member",
        )
        response.headers.update(admitted.headers)
        return admitted.principal


@dataclass(frozen=True, slots=True)
class Public:
    """A route open to anyone (its handler checks what it must itself)."""

    async def __call__(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Internal:
    """A route for Atrium's own Serve replicas: from ``ATRIUM_INTERNAL_NETWORKS``, with
    the internal token (a secret of the deployment, never given to tenants)."""

    async def __call__(self, request: Request) -> None:
        services = get_services(request)
        if not peer_in(request, services.settings.internal_networks):
            raise Forbidden(
                "this route answers only the networks in ATRIUM_INTERNAL_NETWORKS "
                "(loopback by default), never through a proxy"
            )
        if not bearer_matches(request.headers.get("authorization"), services.internal_token):
            raise Forbidden("this route is for Atrium's own services")


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


# On routes whose responses carry secrets (tokens, keys, signing secrets): no cache,
# shared or the browser's, keeps a copy. `dependencies=[..., NoStore]`.
NoStore = Depends(_no_store)


def member(principal: Principal) -> str:
    """The tenant of a principal admitted by ``Authorize(..., "tenant_member")``."""
    assert principal.tenant_id is not None
    return principal.tenant_id
