from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.kit.deps import Authorize, ServicesDep, SessionDep
from control_plane.kit.pagination import Page, PageDep
from control_plane.kit.uploads import upload_form
from control_plane.model import service, versions
from control_plane.model.schemas import (
    ALIAS_PATTERN,
    AliasRead,
    AliasSet,
    ModelCreate,
    ModelRead,
    ModelUpdate,
    VersionRead,
)

router = APIRouter(prefix="/api/v1/models", tags=["models"])
Reader = Annotated[Principal, Authorize(Action.MODELS_READ)]
Writer = Annotated[Principal, Authorize(Action.MODELS_WRITE)]
Alias = Annotated[
    str, Path(pattern=ALIAS_PATTERN, description="A lower-case slug such as `champion`.")
]
Number = Annotated[int, Path(ge=1, le=2**31 - 1, description="The version number.")]
UPLOAD_FORM = upload_form(
    required=["format"],
    format={"type": "string"},
    signature={"type": "string", "description": "JSON signature"},
    tags={"type": "string", "description": "JSON object of labels"},
)


@router.post("", response_model=ModelRead, status_code=status.HTTP_201_CREATED)
async def create(session: SessionDep, me: Writer, body: ModelCreate) -> ModelRead:
    """Register a model (its name is unique in the tenant); upload versions to it next."""
    model = await service.create(session, me, body)
    return (await service.read(session, [model]))[0]


@router.get("", response_model=Page[ModelRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[ModelRead]:
    """The tenant's models."""
    rows, cursor = await service.list_page(session, me, page)
    return Page(items=await service.read(session, rows), next_cursor=cursor)


@router.get("/{model_id}", response_model=ModelRead)
async def get(session: SessionDep, me: Reader, model_id: str) -> ModelRead:
    """One model, with its aliases."""
    model = await service.get(session, me, model_id)
    return (await service.read(session, [model]))[0]


@router.patch("/{model_id}", response_model=ModelRead)
async def update(session: SessionDep, me: Writer, model_id: str, body: ModelUpdate) -> ModelRead:
    """Rename a model or change its description, framework or tags."""
    model = await service.update(session, me, model_id, body)
    return (await service.read(session, [model]))[0]


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(services: ServicesDep, session: SessionDep, me: Writer, model_id: str) -> None:
    """Delete a model, its versions and aliases, and purge their artifacts."""
    await service.delete(services, session, me, model_id)


@router.post(
    "/{model_id}/versions",
    response_model=VersionRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_FORM,
)
async def upload_version(
    services: ServicesDep,
    session: SessionDep,
    me: Writer,
    model_id: str,
    request: Request,
    wait: Annotated[
        bool,
        Query(
            description="Answer only once validated: 201 `ready`, or 422 with the loader's"
            " error (and nothing kept)."
        ),
    ] = False,
) -> VersionRead:
    """Upload an artifact (multipart: file, format, signature?, tags?) as the next version;
    it is `validating` until a sandboxed load and test prediction make it `ready` (or
    `failed`, with the loader's error)."""
    model, version = await versions.upload(services, session, me, model_id, request, wait=wait)
    return (await versions.read(session, model, [version]))[0]


@router.get("/{model_id}/versions", response_model=Page[VersionRead])
async def list_versions(
    session: SessionDep, me: Reader, model_id: str, page: PageDep
) -> Page[VersionRead]:
    """A model's versions, oldest first."""
    model, rows, cursor = await versions.list_page(session, me, model_id, page)
    return Page(items=await versions.read(session, model, rows), next_cursor=cursor)


@router.get("/{model_id}/versions/{version}", response_model=VersionRead)
async def get_version(
    session: SessionDep, me: Reader, model_id: str, version: Number
) -> VersionRead:
    """One version: its status, signature, checksum and aliases."""
    model, row = await versions.get(session, me, model_id, version)
    return (await versions.read(session, model, [row]))[0]


@router.delete("/{model_id}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_version(
    services: ServicesDep, session: SessionDep, me: Writer, model_id: str, version: Number
) -> None:
    """Delete a version that no alias or deployment uses, and purge its artifact."""
    await versions.delete(services, session, me, model_id, version)


@router.put("/{model_id}/aliases/{alias}", response_model=AliasRead)
async def set_alias(
    services: ServicesDep,
    session: SessionDep,
    me: Writer,
    model_id: str,
    alias: Alias,
    body: AliasSet,
) -> AliasRead:
    """Point an alias (`champion`, `challenger`, any slug) at a ready version."""
    return await service.set_alias(services, session, me, model_id, alias, body.version)


@router.delete("/{model_id}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_alias(session: SessionDep, me: Writer, model_id: str, alias: Alias) -> None:
    """Remove an alias (the version stays)."""
    await service.delete_alias(session, me, model_id, alias)
