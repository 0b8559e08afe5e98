"""TorchScript and torch.export programs (``.pt2``); never pickled modules."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from serve_apps.runtime.loaders.base import LoadedModel, Loader, LoaderError, outputs_named, require
from serve_apps.runtime.signature import Signature, TensorSpec


class TorchModel(LoadedModel):
    def __init__(self, module: Any, signature: Signature, device: str) -> None:
        import torch

        self._torch = torch
        self._module = module
        self._device = None if device == "cpu" else torch.device(device)
        self.signature = signature
        self._names: list[str] | None = None

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()]
        if self._device is not None:
            tensors = [t.to(self._device) for t in tensors]
        with torch.inference_mode():
            result = self._module(*tensors)
        values = result if isinstance(result, tuple | list) else (result,)
        arrays = [v.numpy() if self._device is None else v.cpu().numpy() for v in values]
        if self._names is None or len(self._names) != len(arrays):
            self._names = list(outputs_named(self.signature, arrays, "output"))
        return dict(zip(self._names, arrays, strict=True))


def _zip_or_refuse(path: Path, fmt: str) -> None:
    if not zipfile.is_zipfile(path):
        raise LoaderError(f"not a {fmt} archive (pickled torch modules are refused)")


class TorchScriptLoader(Loader):
    format = "torchscript"

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        import torch

        signature = require(signature, self.format)
        _zip_or_refuse(path, self.format)
        try:
            with warnings.catch_warnings():  # deprecated upstream; still a format we accept
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise LoaderError(f"not a loadable TorchScript model: {exc}") from exc
        return TorchModel(module.eval(), signature, device)


_TORCH_DTYPES = {
    "torch.float32": "float32",
    "torch.float64": "float64",
    "torch.int32": "int32",
    "torch.int64": "int64",
    "torch.bool": "bool",
}


class TorchExportLoader(Loader):
    format = "torch-export"
    carries_signature = True

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        import torch

        _zip_or_refuse(path, self.format)
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise LoaderError(f"not a loadable torch.export program: {exc}") from exc
        found = _signature_of(program)
        module = program.module().to(device)
        return TorchModel(module, signature or found, device)


def _signature_of(program: Any) -> Signature:
    """Inputs from the exported graph's placeholders (dynamic dimensions become -1)."""
    user_inputs = set(program.graph_signature.user_inputs)
    specs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta["val"]
            shape = [d if isinstance(d, int) else -1 for d in value.shape]
            dtype = _TORCH_DTYPES.get(str(value.dtype), "float32")
            specs.append(TensorSpec(name=node.name, dtype=dtype, shape=shape))
    return Signature(inputs=specs)
