from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.kit.deps import Authorize, ServicesDep, SessionDep
from control_plane.kit.pagination import Page, PageDep
from control_plane.user import service
from control_plane.user.schemas import UserCreate, UserRead, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])
Reader = Annotated[Principal, Authorize(Action.USERS_READ)]
Writer = Annotated[Principal, Authorize(Action.USERS_WRITE)]
Member = Annotated[Principal, Authorize(Action.SELF_READ)]


@router.post("", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create(
    services: ServicesDep, session: SessionDep, me: Writer, body: UserCreate
) -> UserRead:
    """Add a user to the caller's tenant (platform admins: to `tenant_id`)."""
    return UserRead.model_validate(await service.create(services, session, me, body))


@router.get("", response_model=Page[UserRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[UserRead]:
    """Users of the caller's tenant (platform admins: all)."""
    rows, cursor = await service.list_page(session, me, page)
    return Page(items=[UserRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{user_id}", response_model=UserRead)
async def get(session: SessionDep, me: Reader, user_id: str) -> UserRead:
    """One user of the caller's tenant."""
    return UserRead.model_validate(await service.get(session, me, user_id))


@router.patch("/{user_id}", response_model=UserRead)
async def update(
    services: ServicesDep, session: SessionDep, me: Member, user_id: str, body: UserUpdate
) -> UserRead:
    """Change email, password or role; members may change their own email and password."""
    return UserRead.model_validate(await service.update(services, session, me, user_id, body))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(services: ServicesDep, session: SessionDep, me: Writer, user_id: str) -> None:
    """Remove a user; their API keys are revoked and sessions end."""
    await service.delete(services, session, me, user_id)
