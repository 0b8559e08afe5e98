"""Schema bases: strict inputs, ORM-readable outputs."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# The name of a tenant's model, dataset or deployment: unique in the tenant, URL-safe.
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Letters, digits, '.', '_' and '-'; unique in the tenant.",
    ),
]


class InputSchema(BaseModel):
    """Unknown fields are refused, so nobody sets what they may not (mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)
