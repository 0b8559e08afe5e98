"""What a model takes and gives: named tensors with a dtype and a shape (-1: any)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DTYPES = ("float32", "float64", "int32", "int64", "bool", "string")


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=200)
    dtype: str = Field(description=f"One of {', '.join(DTYPES)}.")
    shape: list[int] = Field(description="-1 for a dimension of any size (the batch, usually).")

    def numpy_dtype(self) -> np.dtype[np.generic]:
        return np.dtype(object if self.dtype == "string" else self.dtype)


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(default_factory=list)


class InputError(ValueError):
    """A request's tensors do not fit the signature; the message names the input."""


def check_inputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs in signature order, cast to the declared dtype, or InputError."""
    missing = [spec.name for spec in signature.inputs if spec.name not in inputs]
    if missing:
        raise InputError(f"missing input(s): {', '.join(missing)}")
    extra = sorted(set(inputs) - {spec.name for spec in signature.inputs})
    if extra:
        raise InputError(f"unknown input(s): {', '.join(extra)}")
    return {spec.name: _fit(spec, np.asarray(inputs[spec.name])) for spec in signature.inputs}


def _fit(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    if len(array.shape) != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
    ):
        raise InputError(
            f"input '{spec.name}': expected shape {spec.shape}, got {list(array.shape)}"
        )
    want = spec.numpy_dtype()
    if array.dtype == want:
        return array
    if not np.can_cast(array.dtype, want, casting="same_kind"):
        raise InputError(f"input '{spec.name}': expected {spec.dtype}, got {array.dtype}")
    return array.astype(want)


def sample_inputs(signature: Signature, rows: int = 2) -> dict[str, np.ndarray]:
    """Zeros shaped by the signature, ``rows`` wherever a dimension is free."""
    return {
        spec.name: np.zeros([rows if d == -1 else d for d in spec.shape], dtype=spec.numpy_dtype())
        for spec in signature.inputs
    }
