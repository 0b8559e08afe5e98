"""What a deployment's traffic names (versions or aliases) resolves to right now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import Conflict, NotFound
from control_plane.model.repository import AliasRepository, VersionRepository
from control_plane.models import ModelAlias, ModelVersion


@dataclass(frozen=True)
class Resolved:
    version_id: str
    version: int
    weight: int
    alias: str | None
    format: str
    signature: dict[str, Any]


async def resolve(
    session: AsyncSession, tenant_id: str, model_id: str, traffic: Sequence[dict[str, Any]]
) -> list[Resolved]:
    """Each target as a ready version; 404 for an unknown one, 409 for one not ready."""
    versions = {
        v.version: v for v in await VersionRepository(session, tenant_id).of_model(model_id)
    }
    aliases = {a.alias: a for a in await AliasRepository(session, tenant_id).of_model(model_id)}
    out = []
    for target in traffic:
        alias = target.get("alias")
        number = aliases[alias].version if alias in aliases else target.get("version")
        if alias is not None and alias not in aliases:
            raise NotFound(f"the model has no alias '{alias}'")
        version = versions.get(number) if number is not None else None
        if version is None:
            raise NotFound(f"the model has no version {number}")
        out.append(_ready(version, target["weight"], alias))
    return out


def _ready(version: ModelVersion, weight: int, alias: str | None) -> Resolved:
    if version.status != "ready":
        raise Conflict(f"version {version.version} is {version.status}; only ready versions serve")
    return Resolved(
        version_id=version.id,
        version=version.version,
        weight=weight,
        alias=alias,
        format=version.format,
        signature=version.signature or {},
    )


def uses_alias(traffic: Sequence[dict[str, Any]], alias: ModelAlias | str) -> bool:
    name = alias.alias if isinstance(alias, ModelAlias) else alias
    return any(t.get("alias") == name for t in traffic)


def uses_version(traffic: Sequence[dict[str, Any]], numbers: set[int]) -> bool:
    return any(t.get("version") in numbers for t in traffic)
