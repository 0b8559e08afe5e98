from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, status

from control_plane.auth import mfa, service
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.auth.schemas import MeKey, MeUser, MfaChange, MfaSetup, RefreshRequest, TokenPair
from control_plane.kit.deps import Authorize, NoStore, Public, ServicesDep, SessionDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
wellknown = APIRouter(tags=["auth"])
Me = Annotated[Principal, Authorize(Action.SELF_READ)]


@router.post("/token", response_model=TokenPair, dependencies=[Public(), NoStore])
async def token(
    services: ServicesDep,
    session: SessionDep,
    username: Annotated[str, Form(max_length=320, description="Email address.")],
    password: Annotated[str, Form(max_length=1024)],
    totp_code: Annotated[str | None, Form(max_length=12)] = None,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    tenant: Annotated[
        str | None,
        Form(
            max_length=40,
            description="The tenant's slug. Emails are unique per tenant: needed only when "
            "this email and password open accounts in several tenants (401 tenant_required).",
        ),
    ] = None,
) -> TokenPair:
    """Sign in with email and password (OAuth2 password grant), plus a TOTP code when MFA is on."""
    return await service.login(
        services, session, email=username, password=password, totp_code=totp_code, tenant=tenant
    )


@router.post("/refresh", response_model=TokenPair, dependencies=[Public(), NoStore])
async def refresh(services: ServicesDep, session: SessionDep, body: RefreshRequest) -> TokenPair:
    """Trade a refresh token for a new pair; each refresh token works once."""
    return await service.refresh(services, session, body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(services: ServicesDep, session: SessionDep, me: Me) -> None:
    """End the caller's sign-in session: its refresh tokens and its access tokens."""
    await service.logout(services, session, me)


@router.get("/me", response_model=MeUser | MeKey)
async def me(me: Me) -> Any:
    """Who the credentials belong to."""
    if me.kind == "api_key":
        assert me.api_key_id is not None
        return MeKey(api_key_id=me.api_key_id, tenant_id=me.tenant_id, scopes=list(me.scopes))
    return MeUser(
        id=me.user_id,
        email=me.email,
        tenant_id=me.tenant_id,
        role=me.role.value,
        mfa_enabled=me.mfa_enabled,
    )


@router.post("/mfa/setup", response_model=MfaSetup, dependencies=[NoStore])
async def mfa_setup(services: ServicesDep, session: SessionDep, me: Me) -> MfaSetup:
    """Start TOTP enrolment: a new secret and its otpauth:// URI (MFA is not on until enabled)."""
    return await mfa.setup(services, session, me)


@router.post("/mfa/enable", status_code=status.HTTP_204_NO_CONTENT)
async def mfa_enable(services: ServicesDep, session: SessionDep, me: Me, body: MfaChange) -> None:
    """Turn MFA on with a valid code for the secret from setup; other sessions end."""
    await mfa.enable(services, session, me, body)


@router.post("/mfa/disable", status_code=status.HTTP_204_NO_CONTENT)
async def mfa_disable(services: ServicesDep, session: SessionDep, me: Me, body: MfaChange) -> None:
    """Turn MFA off; needs a current code (and a recent sign-in or `current_password`)."""
    await mfa.disable(services, session, me, body)


@wellknown.get("/.well-known/jwks.json", dependencies=[Public()])
async def jwks(services: ServicesDep) -> dict[str, Any]:
    """Public keys that verify access tokens, by `kid`."""
    return services.keyring.jwks()
