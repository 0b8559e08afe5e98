"""ONNX through onnxruntime; the graph carries its own signature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from serve_apps.runtime.loaders.base import LoadedModel, Loader, LoaderError
from serve_apps.runtime.signature import Signature, TensorSpec

_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or [])]
    return TensorSpec(name=arg.name, dtype=_TYPES.get(arg.type, "float32"), shape=shape)


class OnnxModel(LoadedModel):
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._outputs = [o.name for o in session.get_outputs()]
        self.signature = Signature(
            inputs=[_spec(i) for i in session.get_inputs()],
            outputs=[_spec(o) for o in session.get_outputs()],
        )

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._outputs, inputs)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise LoaderError(f"the ONNX graph failed at run time: {exc}") from exc
        if len(values) == 1:
            return {self._outputs[0]: values[0]}
        return dict(zip(self._outputs, values, strict=True))


class OnnxLoader(Loader):
    format = "onnx"
    carries_signature = True

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise LoaderError(f"not a loadable ONNX model: {exc}") from exc
        return OnnxModel(session)
