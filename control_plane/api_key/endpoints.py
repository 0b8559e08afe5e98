from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from control_plane.api_key import service
from control_plane.api_key.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import SIGNED_IN, Authorize, InvalidationDep, NoStore, SessionDep, member
from control_plane.errors import NotFound, PayloadTooLarge, ValidationFailed, responses
from control_plane.kit.pagination import Page, PageDep

router = APIRouter(
    prefix="/api/v1/api-keys", tags=["api-keys"], responses=responses(*SIGNED_IN, ValidationFailed)
)
Reader = Annotated[Principal, Depends(Authorize(Action.KEYS_READ, "tenant_member"))]
Writer = Annotated[Principal, Depends(Authorize(Action.KEYS_WRITE, "tenant_member"))]


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[NoStore],
    responses=responses(PayloadTooLarge, ValidationFailed),
)
async def create(session: SessionDep, me: Writer, body: ApiKeyCreate) -> ApiKeyCreated:
    """Make an API key; the response is the only time the whole key is shown. A key made
    with a key never outlives it (its expiry is capped) and is revoked with it."""
    row, key = await service.create(session, me, member(me), body)
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(row).model_dump(), "key": key})


@router.get("", response_model=Page[ApiKeyRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[ApiKeyRead]:
    """Keys of the tenant (owners/admins) or of the caller."""
    rows, cursor = await service.list_page(session, me, member(me), page)
    return Page(items=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound))
async def delete(
    session: SessionDep, invalidation: InvalidationDep, me: Writer, key_id: str
) -> None:
    """Revoke a key; it is refused from the next request on."""
    await service.revoke(session, me, member(me), key_id, invalidation=invalidation)
