from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, status

from control_plane.auth import mfa, service
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.auth.schemas import MeKey, MeUser, MfaChange, MfaSetup, RefreshRequest, TokenPair
from control_plane.deps import (
    SIGNED_IN,
    Authorize,
    InvalidationDep,
    KeyRingDep,
    NoStore,
    PasswordsDep,
    ProofDep,
    Public,
    SecretBoxDep,
    SessionDep,
    SettingsDep,
    ThrottleDep,
    TokensDep,
)
from control_plane.errors import (
    AtriumError,
    Conflict,
    InvalidTotp,
    LoginFailed,
    MfaRequired,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    ReauthenticationRequired,
    TenantRequired,
    TenantSuspended,
    Unauthorized,
    ValidationFailed,
    responses,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
wellknown = APIRouter(tags=["auth"])
Me = Annotated[Principal, Depends(Authorize(Action.SELF_READ))]
# a change to one's own MFA: a JSON body, re-authentication and a code
MFA_CHANGE = (
    *SIGNED_IN,
    ReauthenticationRequired,
    InvalidTotp,
    Conflict,
    PayloadTooLarge,
    ValidationFailed,
    Overloaded,
)


@router.post(
    "/token",
    response_model=TokenPair,
    dependencies=[Depends(Public()), NoStore],
    responses=responses(
        LoginFailed,
        MfaRequired,
        InvalidTotp,
        TenantRequired,
        TenantSuspended,
        PayloadTooLarge,
        ValidationFailed,
        RateLimited,
        Overloaded,
    ),
)
async def token(
    session: SessionDep,
    throttle: ThrottleDep,
    passwords: PasswordsDep,
    proof: ProofDep,
    tokens: TokensDep,
    settings: SettingsDep,
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
        session,
        throttle=throttle,
        passwords=passwords,
        proof=proof,
        tokens=tokens,
        settings=settings,
        email=username,
        password=password,
        totp_code=totp_code,
        tenant=tenant,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    dependencies=[Depends(Public()), NoStore],
    responses=responses(Unauthorized, TenantSuspended, PayloadTooLarge, ValidationFailed),
)
async def refresh(
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    invalidation: InvalidationDep,
    body: RefreshRequest,
) -> TokenPair:
    """Trade a refresh token for a new pair; each refresh token works once."""
    return await service.refresh(
        session, body.refresh_token, tokens=tokens, settings=settings, invalidation=invalidation
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(*SIGNED_IN))
async def logout(session: SessionDep, invalidation: InvalidationDep, me: Me) -> None:
    """End the caller's sign-in session: its refresh tokens and its access tokens."""
    await service.logout(session, me, invalidation=invalidation)


@router.get("/me", response_model=MeUser | MeKey, responses=responses(*SIGNED_IN))
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


@router.post(
    "/mfa/setup",
    response_model=MfaSetup,
    dependencies=[NoStore],
    responses=responses(*SIGNED_IN, Conflict),
)
async def mfa_setup(session: SessionDep, secrets: SecretBoxDep, me: Me) -> MfaSetup:
    """Start TOTP enrolment: a new secret and its otpauth:// URI (MFA is not on until enabled)."""
    return await mfa.setup(session, me, secrets=secrets)


@router.post(
    "/mfa/enable", status_code=status.HTTP_204_NO_CONTENT, responses=responses(*MFA_CHANGE)
)
async def mfa_enable(
    session: SessionDep, proof: ProofDep, invalidation: InvalidationDep, me: Me, body: MfaChange
) -> None:
    """Turn MFA on with a valid code for the secret from setup; other sessions end."""
    await mfa.enable(session, me, body, proof=proof, invalidation=invalidation)


@router.post(
    "/mfa/disable", status_code=status.HTTP_204_NO_CONTENT, responses=responses(*MFA_CHANGE)
)
async def mfa_disable(
    session: SessionDep, proof: ProofDep, invalidation: InvalidationDep, me: Me, body: MfaChange
) -> None:
    """Turn MFA off; needs a current code (and a recent sign-in or `current_password`)."""
    await mfa.disable(session, me, body, proof=proof, invalidation=invalidation)


@wellknown.get(
    "/.well-known/jwks.json", dependencies=[Depends(Public())], responses=responses(AtriumError)
)
async def jwks(keyring: KeyRingDep) -> dict[str, Any]:
    """Public keys that verify access tokens, by `kid`."""
    return keyring.jwks()
