from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from control_plane.auth.permissions import Action
from control_plane.auth.principal import Principal
from control_plane.deps import (
    SIGNED_IN,
    ArtifactsDep,
    Authorize,
    DatabaseDep,
    ReconcilerDep,
    SandboxDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    ValidatorDep,
    member,
)
from control_plane.errors import (
    BadRequest,
    Conflict,
    ModelRejected,
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

router = APIRouter(
    prefix="/api/v1/models",
    tags=["models"],
    responses=responses(*SIGNED_IN, ValidationFailed),
)
# models belong to tenants: platform admins are refused (403)
Reader = Annotated[Principal, Depends(Authorize(Action.MODELS_READ, "tenant_member"))]
Writer = Annotated[Principal, Depends(Authorize(Action.MODELS_WRITE, "tenant_member"))]
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


@router.post(
    "",
    response_model=ModelRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(Conflict),
)
async def create(session: SessionDep, me: Writer, body: ModelCreate) -> ModelRead:
    """Register a model (its name is unique in the tenant); upload versions to it next."""
    model = await service.create(session, member(me), body, actor=me)
    return (await service.read(session, [model]))[0]


@router.get("", response_model=Page[ModelRead])
async def list_(session: SessionDep, me: Reader, page: PageDep) -> Page[ModelRead]:
    """The tenant's models."""
    rows, cursor = await service.list_page(session, member(me), page)
    return Page(items=await service.read(session, rows), next_cursor=cursor)


@router.get("/{model_id}", response_model=ModelRead, responses=responses(NotFound))
async def get(session: SessionDep, me: Reader, model_id: str) -> ModelRead:
    """One model, with its aliases."""
    model = await service.get(session, member(me), model_id)
    return (await service.read(session, [model]))[0]


@router.patch("/{model_id}", response_model=ModelRead, responses=responses(NotFound, Conflict))
async def update(session: SessionDep, me: Writer, model_id: str, body: ModelUpdate) -> ModelRead:
    """Rename a model or change its description, framework or tags."""
    model = await service.update(session, member(me), model_id, body, actor=me)
    return (await service.read(session, [model]))[0]


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
)
async def delete(
    session: SessionDep, me: Writer, model_id: str, db: DatabaseDep, store: ArtifactsDep
) -> None:
    """Delete a model, its versions and aliases, and purge their artifacts."""
    await service.delete(session, member(me), model_id, actor=me, db=db, store=store)


@router.post(
    "/{model_id}/versions",
    response_model=VersionRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_FORM,
    responses=responses(
        BadRequest,
        NotFound,
        PayloadTooLarge,
        StorageQuotaExceeded,
        UnsupportedMediaType,
        ValidationFailed,
        ModelRejected,
        SandboxUnavailable,
    ),
)
async def upload_version(
    session: SessionDep,
    me: Writer,
    model_id: str,
    request: Request,
    sandbox: SandboxDep,  # 503 when the artifact could not be validated
    storage: StorageDep,
    validator: ValidatorDep,
    settings: SettingsDep,
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
    model, version = await versions.upload(
        session,
        member(me),
        model_id,
        request,
        actor=me,
        wait=wait,
        storage=storage,
        validator=validator,
        allow_pickle=settings.allow_pickle,
    )
    return (await versions.read(session, model, [version]))[0]


@router.get("/{model_id}/versions", response_model=Page[VersionRead], responses=responses(NotFound))
async def list_versions(
    session: SessionDep, me: Reader, model_id: str, page: PageDep
) -> Page[VersionRead]:
    """A model's versions, oldest first."""
    model, rows, cursor = await versions.list_page(session, member(me), model_id, page)
    return Page(items=await versions.read(session, model, rows), next_cursor=cursor)


@router.get(
    "/{model_id}/versions/{version}", response_model=VersionRead, responses=responses(NotFound)
)
async def get_version(
    session: SessionDep, me: Reader, model_id: str, version: Number
) -> VersionRead:
    """One version: its status, signature, checksum and aliases."""
    model, row = await versions.get(session, member(me), model_id, version)
    return (await versions.read(session, model, [row]))[0]


@router.delete(
    "/{model_id}/versions/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
)
async def delete_version(
    session: SessionDep,
    me: Writer,
    model_id: str,
    version: Number,
    db: DatabaseDep,
    store: ArtifactsDep,
) -> None:
    """Delete a version that no alias or deployment uses, and purge its artifact."""
    await versions.delete(session, member(me), model_id, version, actor=me, db=db, store=store)


@router.put(
    "/{model_id}/aliases/{alias}",
    response_model=AliasRead,
    responses=responses(NotFound, Conflict),
)
async def set_alias(
    session: SessionDep,
    me: Writer,
    model_id: str,
    alias: Alias,
    body: AliasSet,
    reconciler: ReconcilerDep,
) -> AliasRead:
    """Point an alias (`champion`, `challenger`, any slug) at a ready version."""
    return await service.set_alias(
        session, member(me), model_id, alias, body.version, actor=me, reconciler=reconciler
    )


@router.delete(
    "/{model_id}/aliases/{alias}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
)
async def delete_alias(session: SessionDep, me: Writer, model_id: str, alias: Alias) -> None:
    """Remove an alias (the version stays)."""
    await service.delete_alias(session, member(me), model_id, alias, actor=me)
