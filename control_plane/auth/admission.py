"""Admission: the one policy that lets a request in, for the control plane's routes
(``Authorize``) and the inference gateway alike.

Authenticate the ``Authorization`` header, take a token from the tenant's rate bucket
(and the key's own), then require the route's action (and a tenant where only
tenants may call). The rate is taken before the permission check so that probing
for permissions costs the same as calling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.errors import Forbidden
from control_plane.plan.catalog import Limit


class Authenticates(Protocol):
    async def authenticate(self, authorization: str | None) -> Principal: ...


class RateLimits(Protocol):
    async def rate(
        self,
        tenant_id: str,
        limit: Limit,
        *,
        key_id: str | None = None,
        key_rps: float | None = None,
    ) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class Admitted:
    principal: Principal
    headers: dict[str, str]  # RateLimit-* for the response


@dataclass(frozen=True, slots=True)
class Admission:
    authenticator: Authenticates
    rates: RateLimits

    async def admit(
        self,
        authorization: str | None,
        action: Action,
        *,
        rate: Limit,
        tenants_only: bool = False,
    ) -> Admitted:
        principal = await self.authenticator.authenticate(authorization)
        headers: dict[str, str] = {}
        if principal.tenant_id is not None:  # each tenant's calls share its rate
            headers = await self.rates.rate(
                principal.tenant_id, rate, key_id=principal.api_key_id, key_rps=principal.key_rps
            )
        if tenants_only and principal.tenant_id is None:
            raise Forbidden(f"'{action}' belongs to tenants")
        if not principal.can(action):
            raise Forbidden(_missing(principal, action))
        return Admitted(principal, headers)


def _missing(principal: Principal, action: Action) -> str:
    if principal.kind == "api_key":
        return f"this API key's scopes do not grant '{action}' (e.g. the '{action}' scope)"
    return f"this action needs the '{action}' permission"
