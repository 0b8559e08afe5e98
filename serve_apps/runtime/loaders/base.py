"""The contract every format's loader fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from serve_apps.runtime.signature import InputChecker, Signature


class LoaderError(ValueError):
    """The artifact cannot be loaded as the declared format; the message says why."""


class UnsafeArtifact(LoaderError):
    """The artifact would need to run arbitrary code to load (pickle and the like)."""


class LoadedModel(ABC):
    """A model loaded once; ``predict`` takes and returns numpy arrays keyed by name."""

    signature: Signature
    _checker: InputChecker | None = None

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.predict_checked(self.check(inputs))

    def check(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs in signature order and dtype, or InputError naming the input."""
        if self._checker is None:
            self._checker = InputChecker(self.signature)
        return self._checker(inputs)

    @abstractmethod
    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs already in signature order and dtype."""


class Loader(ABC):
    format: ClassVar[str]
    # True when the artifact describes its own inputs; else the upload must give them.
    carries_signature: ClassVar[bool] = False

    @abstractmethod
    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        """Load ``path``; raise LoaderError (or UnsafeArtifact) when it cannot be."""


def require(signature: Signature | None, fmt: str) -> Signature:
    if signature is None:
        raise LoaderError(f"{fmt} models do not describe their inputs: give a signature")
    return signature


def outputs_named(
    signature: Signature, values: list[np.ndarray], default: str
) -> dict[str, np.ndarray]:
    names = [spec.name for spec in signature.outputs]
    if len(names) != len(values):
        names = [default] if len(values) == 1 else [f"{default}_{i}" for i in range(len(values))]
    return dict(zip(names, values, strict=True))
