from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationError

from control_plane.kit.schemas import InputSchema, Name, ReadSchema
from control_plane.kit.uploads import form_error


class ColumnRead(ReadSchema):
    name: str
    type: str = Field(description="The Arrow type read from the file (int64, double, string, …).")


class DatasetRead(ReadSchema):
    id: str
    name: str
    format: Literal["csv", "parquet"]
    rows: int
    columns: list[ColumnRead]
    size_bytes: int
    sha256: str
    created_by: str
    created_at: datetime


class DatasetForm(InputSchema):
    """The text fields of a dataset upload (besides ``file``)."""

    name: Name
    format: Literal["csv", "parquet"] = Field(description="Default: from the file's extension.")

    @classmethod
    def parse(cls, fields: dict[str, Any]) -> DatasetForm:
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise form_error(exc) from None
