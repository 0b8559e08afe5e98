"""The model runtime: load any supported format once, predict on numpy batches by name.

Pure Python and framework libraries; no Ray, no control-plane imports.
"""

from __future__ import annotations

from pathlib import Path

from serve_apps.runtime.loaders import (
    FORMATS,
    UNSAFE,
    LoadedModel,
    LoaderError,
    UnsafeArtifact,
    loader_for,
)
from serve_apps.runtime.signature import InputError, Signature, TensorSpec, sample_inputs


def default_device() -> str:
    """``cuda`` when a GPU is usable, else ``cpu``. Without an NVIDIA device node torch
    is not imported to find out: that import alone cost every ONNX or XGBoost worker's
    first load about a second."""
    if not Path("/dev/nvidiactl").exists():
        return "cpu"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed with the ml extra
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    fmt: str,
    path: Path,
    signature: Signature | None = None,
    *,
    device: str | None = None,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load an artifact of format ``fmt``; ``signature`` where the format does not carry one.
    Pickle/joblib files load only with ``allow_pickle`` (they run code from the file)."""
    loader = loader_for(fmt, allow_pickle=allow_pickle)
    return loader.load(path, signature, device=device or default_device())


__all__ = [
    "FORMATS",
    "UNSAFE",
    "InputError",
    "LoadedModel",
    "LoaderError",
    "Signature",
    "TensorSpec",
    "UnsafeArtifact",
    "load_model",
    "sample_inputs",
]
