"""XGBoost boosters saved as JSON or UBJ (never pickle)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb

from serve_apps.runtime.loaders.base import LoadedModel, Loader, LoaderError, require
from serve_apps.runtime.signature import Signature, feature_matrix


class XGBoostModel(LoadedModel):
    def __init__(self, booster: xgb.Booster, signature: Signature) -> None:
        if len(signature.inputs) != 1:
            raise LoaderError("an XGBoost model takes one input: a 2-D feature matrix")
        self._booster = booster
        self.signature = signature
        self._output = signature.outputs[0].name if signature.outputs else "predictions"

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (features,) = inputs.values()
        return {self._output: self._booster.inplace_predict(features)}


class XGBoostLoader(Loader):
    format = "xgboost"
    carries_signature = True  # the booster knows its feature count

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        with path.open("rb") as handle:
            head = handle.read(1)
        suffix = ".json" if head == b"{" else ".ubj"  # XGBoost reads the format from the name
        booster = xgb.Booster()
        with tempfile.TemporaryDirectory() as tmp:
            named = Path(tmp) / f"model{suffix}"
            shutil.copyfile(path, named)
            try:
                booster.load_model(str(named))
            except xgb.core.XGBoostError as exc:
                raise LoaderError(f"not an XGBoost JSON/UBJ model: {exc}") from exc
        if signature is None:
            signature = _inferred(booster)
        booster.set_param({"nthread": 1})
        if device == "cuda":
            booster.set_param({"device": "cuda"})
        return XGBoostModel(booster, signature)


def _inferred(booster: xgb.Booster) -> Signature:
    features = booster.num_features()
    if features < 1:
        return require(None, "xgboost")  # says to give one
    return feature_matrix(features)
