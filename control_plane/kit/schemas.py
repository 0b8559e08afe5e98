"""Schema bases: strict inputs, ORM-readable outputs."""

from pydantic import BaseModel, ConfigDict


class InputSchema(BaseModel):
    """Unknown fields are refused, so nobody sets what they may not (mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)
