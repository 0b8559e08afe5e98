from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import (
    SIGNED_IN,
    Authorize,
    InvalidationDep,
    PasswordsDep,
    ProofDep,
    SessionDep,
    SettingsDep,
)
from control_plane.errors import (
    Conflict,
    InvalidTotp,
    MfaRequired,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ReauthenticationRequired,
    ValidationFailed,
    responses,
)
from control_plane.kit.pagination import Page, PageDep
from control_plane.user import service
from control_plane.user.schemas import UserCreate, UserRead, UserUpdate

router = APIRouter(
    prefix="/api/v1/users", tags=["users"], responses=responses(*SIGNED_IN, ValidationFailed)
)
Reader = Annotated[Principal, Depends(Authorize(Action.USERS_READ))]
Writer = Annotated[Principal, Depends(Authorize(Action.USERS_WRITE))]
Member = Annotated[Principal, Depends(Authorize(Action.SELF_READ))]
# a JSON body that may carry a password to hash
WRITES = (Conflict, PayloadTooLarge, ValidationFailed, Overloaded)


@router.post(
    "",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(NotFound, *WRITES),
)
async def create(
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    me: Writer,
    body: UserCreate,
) -> UserRead:
    """Add a user to the caller's tenant (platform admins: to `tenant_id`)."""
    user = await service.create(session, me, body, passwords=passwords, settings=settings)
    return UserRead.model_validate(user)


@router.get("", response_model=Page[UserRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[UserRead]:
    """Users of the caller's tenant (platform admins: all)."""
    rows, cursor = await service.list_page(session, me, page)
    return Page(items=[UserRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{user_id}", response_model=UserRead, responses=responses(NotFound))
async def get(session: SessionDep, me: Reader, user_id: str) -> UserRead:
    """One user of the caller's tenant."""
    return UserRead.model_validate(await service.get(session, me, user_id))


@router.patch(
    "/{user_id}",
    response_model=UserRead,
    # changing one's own email or password may need re-authentication (401)
    responses=responses(
        *SIGNED_IN, ReauthenticationRequired, MfaRequired, InvalidTotp, NotFound, *WRITES
    ),
)
async def update(
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    proof: ProofDep,
    invalidation: InvalidationDep,
    me: Member,
    user_id: str,
    body: UserUpdate,
) -> UserRead:
    """Change email, password or role; members may change their own email and password."""
    user = await service.update(
        session,
        me,
        user_id,
        body,
        passwords=passwords,
        settings=settings,
        proof=proof,
        invalidation=invalidation,
    )
    return UserRead.model_validate(user)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
)
async def delete(
    session: SessionDep, invalidation: InvalidationDep, me: Writer, user_id: str
) -> None:
    """Remove a user; their API keys are revoked and sessions end."""
    await service.delete(session, me, user_id, invalidation=invalidation)
