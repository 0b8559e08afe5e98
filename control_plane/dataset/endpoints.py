from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.dataset import service
from control_plane.dataset.schemas import DatasetRead
from control_plane.dataset.service import TableReader
from control_plane.deps import (
    SIGNED_IN,
    ArtifactsDep,
    Authorize,
    DatabaseDep,
    ProbeSlotsDep,
    SandboxDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    member,
)
from control_plane.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    SandboxUnavailable,
    StorageQuotaExceeded,
    UnsupportedMediaType,
    ValidationFailed,
    responses,
)
from control_plane.kit.pagination import Page, PageDep
from control_plane.kit.uploads import upload_form

router = APIRouter(
    prefix="/api/v1/datasets",
    tags=["datasets"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
# datasets feed models: the model scopes cover them; they belong to tenants
Reader = Annotated[Principal, Depends(Authorize(Action.MODELS_READ, "tenant_member"))]
Writer = Annotated[Principal, Depends(Authorize(Action.MODELS_WRITE, "tenant_member"))]
UPLOAD_FORM = upload_form(
    required=["name"],
    name={"type": "string"},
    format={"type": "string", "enum": ["csv", "parquet"]},
)


def _table_reader(sandbox: SandboxDep, slots: ProbeSlotsDep, settings: SettingsDep) -> TableReader:
    return TableReader(sandbox=sandbox, slots=slots, settings=settings)


# 503 when no sandbox can read tenants' files
TableReaderDep = Annotated[TableReader, Depends(_table_reader)]


@router.post(
    "",
    response_model=DatasetRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_FORM,
    responses=responses(
        BadRequest,
        Conflict,
        PayloadTooLarge,
        StorageQuotaExceeded,
        UnsupportedMediaType,
        SandboxUnavailable,
    ),
)
async def create(
    session: SessionDep,
    me: Writer,
    request: Request,
    reader: TableReaderDep,
    storage: StorageDep,
) -> DatasetRead:
    """Upload a CSV or Parquet table (multipart: file, name, format?); it is read through
    and its rows and column types recorded before it is stored."""
    dataset = await service.create(
        session, member(me), request, actor=me, storage=storage, reader=reader
    )
    return DatasetRead.model_validate(dataset)


@router.get("", response_model=Page[DatasetRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[DatasetRead]:
    """The tenant's datasets."""
    rows, cursor = await service.list_page(session, member(me), page)
    return Page(items=[DatasetRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{dataset_id}", response_model=DatasetRead, responses=responses(NotFound))
async def get(session: SessionDep, me: Reader, dataset_id: str) -> DatasetRead:
    """One dataset: rows, typed columns, size."""
    return DatasetRead.model_validate(await service.get(session, member(me), dataset_id))


@router.delete(
    "/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete(
    session: SessionDep, me: Writer, dataset_id: str, db: DatabaseDep, store: ArtifactsDep
) -> None:
    """Delete a dataset and purge its file."""
    await service.delete(session, member(me), dataset_id, actor=me, db=db, store=store)
