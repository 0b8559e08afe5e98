"""One loader per format, imported only when that format is used (frameworks are heavy)."""

from __future__ import annotations

import importlib

from serve_apps.runtime.loaders.base import LoadedModel, Loader, LoaderError, UnsafeArtifact

_REGISTRY = {
    "onnx": "serve_apps.runtime.loaders.onnx:OnnxLoader",
    "xgboost": "serve_apps.runtime.loaders.xgboost:XGBoostLoader",
    "sklearn-skops": "serve_apps.runtime.loaders.sklearn:SkopsLoader",
    "torchscript": "serve_apps.runtime.loaders.torch:TorchScriptLoader",
    "torch-export": "serve_apps.runtime.loaders.torch:TorchExportLoader",
    "keras": "serve_apps.runtime.loaders.tensorflow:KerasLoader",
    "tf-savedmodel": "serve_apps.runtime.loaders.tensorflow:SavedModelLoader",
}
FORMATS = tuple(_REGISTRY)
# Formats whose files describe their own inputs (kept here so that callers need not import
# the framework to ask; a test checks it against each loader's ``carries_signature``).
SELF_DESCRIBING = frozenset(
    {"onnx", "torch-export", "keras", "tf-savedmodel", "xgboost", "sklearn-skops"}
)
# Loading these runs code from the file: refused unless the operator allows it.
UNSAFE = {
    "pickle": "serve_apps.runtime.loaders.sklearn:PickleLoader",
    "joblib": "serve_apps.runtime.loaders.sklearn:PickleLoader",
}
REFUSED = {"pkl", "h5", "pt", "pth"}


def loader_for(fmt: str, *, allow_pickle: bool = False) -> Loader:
    if fmt in REFUSED or (fmt in UNSAFE and not allow_pickle):
        raise UnsafeArtifact(
            f"'{fmt}' files can run arbitrary code when loaded and are refused; save the model"
            f" as {', '.join(FORMATS)} instead"
        )
    target = _REGISTRY.get(fmt) or (UNSAFE.get(fmt) if allow_pickle else None)
    if target is None:
        raise LoaderError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    module, _, name = target.partition(":")
    loader: Loader = getattr(importlib.import_module(module), name)()
    return loader


__all__ = [
    "FORMATS",
    "SELF_DESCRIBING",
    "UNSAFE",
    "LoadedModel",
    "Loader",
    "LoaderError",
    "UnsafeArtifact",
    "loader_for",
]
