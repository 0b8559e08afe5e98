from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from control_plane.errors import ValidationFailed
from control_plane.kit.schemas import InputSchema, Name, ReadSchema
from control_plane.kit.uploads import form_error
from serve_apps.runtime.loaders import FORMATS, UNSAFE
from serve_apps.runtime.signature import Signature, TensorSpec

Framework = Literal["sklearn", "xgboost", "torch", "tensorflow", "onnx", "other"]
ALIAS_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
Tags = Annotated[
    dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]],
    Field(max_length=50, description="Free-form string labels."),
]


class ModelCreate(InputSchema):
    name: Name
    framework: Framework
    description: str = Field("", max_length=2000)
    tags: Tags = Field(default_factory=dict)


class ModelUpdate(InputSchema):
    name: Name | None = None
    framework: Framework | None = None
    description: str | None = Field(None, max_length=2000)
    tags: Tags | None = None


class ModelRead(ReadSchema):
    id: str
    name: str
    framework: str
    description: str
    tags: dict[str, str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = Field(description="The highest version number it has.")
    aliases: dict[str, int] = Field(description="Alias → version number.")


class VersionRead(ReadSchema):
    id: str
    model_id: str
    version: int
    framework: str
    format: str
    sha256: str
    size_bytes: int
    status: Literal["validating", "ready", "failed"] = Field(
        description="`validating` until the sandboxed load and test prediction have run."
    )
    error: str | None = Field(description="Why the version failed validation.")
    input_schema: list[TensorSpec] | None
    output_schema: list[TensorSpec] | None
    signature_inferred: bool = Field(
        False,
        description="True when no signature was given and the platform read one off the "
        "artifact (xgboost, sklearn-skops: `x: float32 [-1, features]`).",
    )
    tags: dict[str, str]
    aliases: list[str]
    created_by: str
    created_at: datetime
    validated_at: datetime | None


class AliasSet(InputSchema):
    version: int = Field(ge=1, description="The version number the alias points to.")


class AliasRead(ReadSchema):
    model_id: str
    alias: str
    version: int


class VersionSource(ReadSchema):
    """What a Serve replica needs to load a version (internal route)."""

    id: str
    tenant_id: str
    format: str
    signature: dict[str, Any] | None
    sha256: str


class VersionForm(InputSchema):
    """The text fields of a version upload (besides ``file``)."""

    format: str = Field(description=f"One of {', '.join(FORMATS)}.")
    signature: Signature | None = Field(
        None,
        description="JSON {inputs: [{name, dtype, shape}], outputs: [...]}; required for"
        " torchscript; xgboost and sklearn-skops without one get `x: float32 [-1, features]`"
        " from the artifact (`signature_inferred` on the version says so).",
    )
    tags: Tags = Field(default_factory=dict)

    @field_validator("format")
    @classmethod
    def _known(cls, fmt: str) -> str:
        if fmt not in FORMATS and fmt not in UNSAFE:
            raise ValueError(f"unknown format '{fmt}'; one of {', '.join(FORMATS)}")
        return fmt

    @classmethod
    def parse(cls, fields: dict[str, str]) -> VersionForm:
        values: dict[str, Any] = dict(fields)
        for name in ("signature", "tags"):
            if name in values:
                values[name] = _json_field(name, values[name])
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise form_error(exc) from None


def _json_field(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"form field '{name}' is not valid JSON: {exc}", extra={"field": name}
        ) from None
