"""scikit-learn estimators saved with skops; only allow-listed types may load."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio

from serve_apps.runtime.loaders.base import (
    LoadedModel,
    Loader,
    LoaderError,
    UnsafeArtifact,
    require,
)
from serve_apps.runtime.signature import Signature

# Beyond what skops trusts by default (estimators, numpy/scipy data, ufuncs): only
# scikit-learn classes. A function reference such as os.system is refused.
TRUSTED_PREFIXES = ("sklearn.",)


class SklearnModel(LoadedModel):
    def __init__(self, estimator: Any, signature: Signature) -> None:
        if len(signature.inputs) != 1:
            raise LoaderError("a scikit-learn model takes one input: a 2-D feature matrix")
        if not hasattr(estimator, "predict"):
            raise LoaderError(f"{type(estimator).__name__} has no predict()")
        self._estimator = estimator
        self.signature = signature
        # probabilities cost a second pass: only when the signature asks for them
        wanted = {spec.name for spec in signature.outputs}
        self._proba = "probabilities" in wanted and hasattr(estimator, "predict_proba")

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (features,) = inputs.values()
        out = {"predictions": np.asarray(self._estimator.predict(features))}
        if self._proba:
            out["probabilities"] = np.asarray(self._estimator.predict_proba(features))
        return out


class SkopsLoader(Loader):
    format = "sklearn-skops"

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        signature = require(signature, self.format)
        if not zipfile.is_zipfile(path):
            raise UnsafeArtifact("not a skops file (a pickle or joblib file is refused)")
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as exc:
            raise LoaderError(f"not a readable skops file: {exc}") from exc
        refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if refused:
            raise UnsafeArtifact(f"types outside the allow-list: {', '.join(sorted(refused))}")
        try:
            estimator = sio.load(path, trusted=untrusted)
        except Exception as exc:
            raise LoaderError(f"the skops file does not load: {exc}") from exc
        return SklearnModel(estimator, signature)


class PickleLoader(Loader):
    """Pickle or joblib files: loading them runs whatever code they hold, so the
    registry accepts them only when the operator allows it (ATRIUM_ALLOW_PICKLE)."""

    format = "pickle"

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        import joblib  # understands plain pickles as well as joblib's own files

        signature = require(signature, self.format)
        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise LoaderError(f"the pickle does not load: {exc}") from exc
        return SklearnModel(estimator, signature)
