from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.billing import service
from control_plane.deps import SIGNED_IN, Authorize, SessionDep
from control_plane.errors import (
    NotFound,
    ValidationFailed,
    responses,
)
from control_plane.kit.pagination import Page, PageDep
from control_plane.kit.schemas import ReadSchema
from control_plane.tenant.service import scope_of

router = APIRouter(
    prefix="/api/v1/invoices",
    tags=["billing"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
Reader = Annotated[Principal, Depends(Authorize(Action.BILLING_READ))]


class InvoiceRead(ReadSchema):
    id: str
    tenant_id: str
    period: str
    period_start: datetime
    period_end: datetime
    currency: str
    lines: list[dict[str, Any]]
    total_cents: int
    issued_at: datetime


@router.get("", response_model=Page[InvoiceRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[InvoiceRead]:
    """Issued invoices, newest first (platform admins: every tenant's)."""
    rows, cursor = await service.list_page(session, scope_of(me), page)
    return Page(items=[InvoiceRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/{invoice_id}",
    response_model=InvoiceRead,
    responses={200: {"content": {"text/csv": {}}}, **responses(NotFound)},
)
async def get(
    session: SessionDep,
    me: Reader,
    invoice_id: str,
    format: Annotated[
        Literal["json", "csv"], Query(description="`csv` to download lines.")
    ] = "json",
) -> Any:
    """One invoice with its lines, as JSON or CSV."""
    invoice = await service.get(session, scope_of(me), invoice_id)
    if format == "csv":
        filename = f"atrium-invoice-{invoice.period}-{invoice.id}.csv"
        return Response(
            service.as_csv(invoice),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return InvoiceRead.model_validate(invoice)
