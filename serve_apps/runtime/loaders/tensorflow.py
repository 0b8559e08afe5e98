"""Keras ``.keras`` files (safe mode) and TensorFlow SavedModels uploaded as a zip."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from serve_apps.runtime.archives import check_zip, extract_zip
from serve_apps.runtime.loaders.base import (
    LoadedModel,
    Loader,
    LoaderError,
    outputs_named,
)
from serve_apps.runtime.signature import Signature, TensorSpec


def _spec(name: str, shape: Any, dtype: Any) -> TensorSpec:
    dims = [d if isinstance(d, int) else -1 for d in shape]
    return TensorSpec(
        name=name, dtype=np.dtype(dtype).name if dtype != "string" else "string", shape=dims
    )


class KerasModel(LoadedModel):
    def __init__(self, model: Any) -> None:
        import keras

        self._to_numpy = keras.ops.convert_to_numpy
        self._model = model
        self.signature = Signature(
            inputs=[_spec(t.name, t.shape, t.dtype) for t in model.inputs],
            outputs=[_spec(t.name, t.shape, t.dtype) for t in model.outputs],
        )

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = list(inputs.values())
        result = self._model(args[0] if len(args) == 1 else args, training=False)
        values = list(result) if isinstance(result, list | tuple) else [result]
        return outputs_named(self.signature, [self._to_numpy(v) for v in values], "output")


class KerasLoader(Loader):
    format = "keras"
    carries_signature = True

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        if not zipfile.is_zipfile(path):
            raise LoaderError("not a .keras file (legacy HDF5 and pickles are refused)")
        check_zip(path)  # Keras unzips it itself: bombs and escaping names stop here
        import keras  # only once the archive is known to be safe (slow import)

        with tempfile.TemporaryDirectory() as tmp:
            named = Path(tmp) / "model.keras"  # Keras insists on the extension
            shutil.copyfile(path, named)
            try:
                model = keras.saving.load_model(named, safe_mode=True, compile=False)
            except Exception as exc:
                raise LoaderError(f"the Keras model does not load in safe mode: {exc}") from exc
        return KerasModel(model)


class SavedModel(LoadedModel):
    def __init__(self, loaded: Any) -> None:
        import tensorflow as tf

        self._tf = tf
        self._loaded = loaded  # keeps the restored variables alive
        self._fn = loaded.signatures["serving_default"]
        _, kwargs = self._fn.structured_input_signature
        outputs = self._fn.structured_outputs
        self.signature = Signature(
            inputs=[_spec(n, s.shape.as_list(), s.dtype.as_numpy_dtype) for n, s in kwargs.items()],
            outputs=[
                _spec(n, s.shape.as_list(), s.dtype.as_numpy_dtype) for n, s in outputs.items()
            ],
        )

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._fn(**{k: self._tf.constant(v) for k, v in inputs.items()})
        return {name: value.numpy() for name, value in result.items()}


class SavedModelLoader(Loader):
    format = "tf-savedmodel"
    carries_signature = True

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        with tempfile.TemporaryDirectory(prefix="atrium-savedmodel-") as workdir:
            root = Path(workdir)
            safe_extract(path, root)
            found = [p.parent for p in root.rglob("saved_model.pb")]
            if len(found) != 1:
                raise LoaderError("the zip must hold exactly one SavedModel (saved_model.pb)")
            import tensorflow as tf  # only once the archive is known to be safe (slow import)

            try:  # variables are restored into memory here; the files can go afterwards
                return SavedModel(tf.saved_model.load(str(found[0])))
            except Exception as exc:
                raise LoaderError(f"the SavedModel does not load: {exc}") from exc


def safe_extract(archive: Path, into: Path) -> None:
    """Unzip a SavedModel upload: limits, escaping names and links are refused before
    anything is written (``archives.extract_zip``)."""
    if not zipfile.is_zipfile(archive):
        raise LoaderError("a SavedModel must be uploaded as a zip")
    extract_zip(archive, into)
