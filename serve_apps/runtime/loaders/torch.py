"""TorchScript and torch.export programs (``.pt2``); never pickled modules."""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
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
        self._fast: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._fast is not None:
            return self._fast(inputs)
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()]
        with torch.inference_mode():
            if self._device is None:
                result = self._module(*tensors)
            else:
                result = self._module(*[t.to(self._device) for t in tensors])
        if type(result) is torch.Tensor:
            arrays = [result.numpy() if self._device is None else result.cpu().numpy()]
        else:
            arrays = [v.numpy() if self._device is None else v.cpu().numpy() for v in result]
        names = self._names
        if names is None or len(names) != len(arrays):
            names = self._names = list(outputs_named(self.signature, arrays, "output"))
            if len(inputs) == 1 and len(arrays) == 1 and type(result) is torch.Tensor:
                self._fast = self._single(names[0])
        if len(arrays) == 1:
            return {names[0]: arrays[0]}
        return dict(zip(names, arrays, strict=True))

    def _single(self, output: str) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        """One tensor in, one out, on the CPU: the whole call in a few operations (the
        general path above costs microseconds that a small model notices)."""
        from_numpy, mode, module = self._torch.from_numpy, self._torch.inference_mode, self._module
        if self._device is not None:
            device = self._device

            def on_device(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                (array,) = inputs.values()
                with mode():
                    tensor = from_numpy(np.ascontiguousarray(array)).to(device)
                    return {output: module(tensor).cpu().numpy()}

            return on_device

        def on_cpu(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            (array,) = inputs.values()
            with mode():
                return {output: module(from_numpy(np.ascontiguousarray(array))).numpy()}

        return on_cpu


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
