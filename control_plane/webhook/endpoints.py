from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import (
    SIGNED_IN,
    Authorize,
    NoStore,
    QuotasDep,
    SecretBoxDep,
    SessionDep,
    SettingsDep,
    member,
)
from control_plane.errors import (
    Forbidden,
    NotFound,
    PlanLimitExceeded,
    ValidationFailed,
    responses,
)
from control_plane.kit.pagination import Page, PageDep
from control_plane.webhook import service
from control_plane.webhook.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead

router = APIRouter(
    prefix="/api/v1/webhooks",
    tags=["webhooks"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
Manager = Annotated[Principal, Depends(Authorize(Action.WEBHOOKS_WRITE, "tenant_member"))]


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[NoStore],  # the answer carries the signing secret
    responses=responses(Forbidden, PlanLimitExceeded),
)
async def create(
    settings: SettingsDep,
    quotas: QuotasDep,
    secrets: SecretBoxDep,
    session: SessionDep,
    me: Manager,
    body: WebhookCreate,
) -> WebhookCreated:
    """Register a webhook; events are POSTed to it signed per Standard Webhooks."""
    hook, secret = await service.create(
        session,
        me,
        member(me),
        body,
        allowed_hosts=settings.webhook_allowed_hosts,
        quotas=quotas,
        secrets=secrets,
    )
    return WebhookCreated.model_validate(
        {**WebhookRead.model_validate(hook).model_dump(), "secret": secret}
    )


@router.get("", response_model=Page[WebhookRead])
async def list_(session: SessionDep, me: Manager, page: PageDep) -> Page[WebhookRead]:
    """The tenant's webhooks."""
    rows, cursor = await service.list_page(session, member(me), page)
    return Page(items=[WebhookRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete(session: SessionDep, me: Manager, webhook_id: str) -> None:
    """Remove a webhook and its delivery log."""
    await service.delete(session, me, member(me), webhook_id)


@router.get(
    "/{webhook_id}/deliveries", response_model=Page[DeliveryRead], responses=responses(NotFound)
)
async def deliveries(
    session: SessionDep, me: Manager, webhook_id: str, page: PageDep
) -> Page[DeliveryRead]:
    """The delivery log of a webhook, newest first."""
    rows, cursor = await service.deliveries(session, member(me), webhook_id, page)
    return Page(items=[DeliveryRead.model_validate(r) for r in rows], next_cursor=cursor)
