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
REFUSED = {"pickle", "joblib", "pkl", "h5", "pt", "pth"}


def loader_for(fmt: str) -> Loader:
    if fmt in REFUSED:
        raise UnsafeArtifact(f"'{fmt}' can run arbitrary code when loaded and is refused")
    target = _REGISTRY.get(fmt)
    if target is None:
        raise LoaderError(f"unknown format '{fmt}' (known: {', '.join(FORMATS)})")
    module, _, name = target.partition(":")
    loader: Loader = getattr(importlib.import_module(module), name)()
    return loader


__all__ = ["FORMATS", "LoadedModel", "Loader", "LoaderError", "UnsafeArtifact", "loader_for"]
