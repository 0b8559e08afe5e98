"""What a model takes and gives: named tensors with a dtype and a shape (-1: any)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    inferred: bool = Field(
        False,
        description="True when none was given and the platform read it off the artifact "
        "(a feature matrix of the width the model was fitted on).",
    )


def feature_matrix(features: int, output_dtype: str = "float32") -> Signature:
    """The signature of a model fitted on a 2-D matrix of ``features`` columns."""
    return Signature(
        inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, features])],
        outputs=[TensorSpec(name="predictions", dtype=output_dtype, shape=[-1])],
        inferred=True,
    )


class InputError(ValueError):
    """A request's tensors do not fit the signature; the message names the input."""


class InputChecker:
    """``check_inputs`` for one signature, with the per-spec work done once up front
    (it runs on every batch, so it must cost next to nothing)."""

    def __init__(self, signature: Signature) -> None:
        self._specs = [
            (
                s.name,
                len(s.shape),
                [(i, d) for i, d in enumerate(s.shape) if d != -1],
                s.numpy_dtype(),
                s,
            )
            for s in signature.inputs
        ]
        self._names = {s.name for s in signature.inputs}

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(self._specs) == 1 and len(inputs) == 1:  # the common case, kept lean
            name, ndim, fixed, dtype, spec = self._specs[0]
            array = inputs.get(name)
            if type(array) is np.ndarray and array.ndim == ndim and array.dtype == dtype:
                shape = array.shape
                for axis, size in fixed:
                    if shape[axis] != size:
                        _wrong_shape(spec, shape)
                return {name: array}
        if inputs.keys() != self._names:
            _explain_names(self._specs, inputs)
        out = {}
        for name, ndim, fixed, dtype, spec in self._specs:
            array = inputs[name]
            if type(array) is not np.ndarray:
                array = np.asarray(array)
            got = array.shape
            if len(got) != ndim:
                _wrong_shape(spec, got)
            for axis, size in fixed:
                if got[axis] != size:
                    _wrong_shape(spec, got)
            if array.dtype != dtype:
                array = _cast(spec, array, dtype)
            out[name] = array
        return out


def _wrong_shape(spec: TensorSpec, got: tuple[int, ...]) -> None:
    raise InputError(f"input '{spec.name}': expected shape {spec.shape}, got {list(got)}")


def _explain_names(specs: list[Any], inputs: Mapping[str, Any]) -> None:
    missing = [name for name, *_ in specs if name not in inputs]
    if missing:
        raise InputError(f"missing input(s): {', '.join(missing)}")
    extra = sorted(set(inputs) - {name for name, *_ in specs})
    raise InputError(f"unknown input(s): {', '.join(extra)}")


def _cast(spec: TensorSpec, array: np.ndarray, dtype: np.dtype[np.generic]) -> np.ndarray:
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise InputError(f"input '{spec.name}': expected {spec.dtype}, got {array.dtype}")
    return array.astype(dtype)


def check_inputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs in signature order, cast to the declared dtype, or InputError."""
    return InputChecker(signature)(inputs)


def sample_inputs(signature: Signature, rows: int = 2) -> dict[str, np.ndarray]:
    """Zeros shaped by the signature, ``rows`` wherever a dimension is free."""
    return {
        spec.name: np.zeros([rows if d == -1 else d for d in spec.shape], dtype=spec.numpy_dtype())
        for spec in signature.inputs
    }
