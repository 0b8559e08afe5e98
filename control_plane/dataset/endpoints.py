from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.dataset import service
from control_plane.dataset.schemas import DatasetRead
from control_plane.kit.deps import Authorize, ServicesDep, SessionDep
from control_plane.kit.pagination import Page, PageDep
from control_plane.kit.uploads import upload_form

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
# datasets feed models: the model scopes cover them
Reader = Annotated[Principal, Authorize(Action.MODELS_READ)]
Writer = Annotated[Principal, Authorize(Action.MODELS_WRITE)]
UPLOAD_FORM = upload_form(
    required=["name"],
    name={"type": "string"},
    format={"type": "string", "enum": ["csv", "parquet"]},
)


@router.post(
    "", response_model=DatasetRead, status_code=status.HTTP_201_CREATED, openapi_extra=UPLOAD_FORM
)
async def create(
    services: ServicesDep, session: SessionDep, me: Writer, request: Request
) -> DatasetRead:
    """Upload a CSV or Parquet table (multipart: file, name, format?); it is read through
    and its rows and column types recorded before it is stored."""
    return DatasetRead.model_validate(await service.create(services, session, me, request))


@router.get("", response_model=Page[DatasetRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[DatasetRead]:
    """The tenant's datasets."""
    rows, cursor = await service.list_page(session, me, page)
    return Page(items=[DatasetRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{dataset_id}", response_model=DatasetRead)
async def get(session: SessionDep, me: Reader, dataset_id: str) -> DatasetRead:
    """One dataset: rows, typed columns, size."""
    return DatasetRead.model_validate(await service.get(session, me, dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(services: ServicesDep, session: SessionDep, me: Writer, dataset_id: str) -> None:
    """Delete a dataset and purge its file."""
    await service.delete(services, session, me, dataset_id)
