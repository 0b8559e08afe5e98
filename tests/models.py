"""Tiny models of every format, trained and saved on the spot (nothing is downloaded).

Each maker writes the artifact under ``directory`` and returns (path, signature or
None when the format carries its own, a direct predict function for comparison).
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from serve_apps.runtime import Signature, TensorSpec

FEATURES = 4
RNG = np.random.default_rng(7)
X = RNG.normal(size=(64, FEATURES)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
MATRIX = Signature(inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, FEATURES])])

Direct = Callable[[np.ndarray], np.ndarray]
Made = tuple[Path, Signature | None, Direct]


def sklearn(directory: Path) -> Made:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(X, Y)
    path = directory / "model.skops"
    sio.dump(model, path)
    return path, MATRIX, lambda x: np.asarray(model.predict(x))


def xgboost(directory: Path, suffix: str = ".json") -> Made:
    import xgboost as xgb

    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=Y), num_boost_round=3)
    path = directory / f"model{suffix}"
    booster.save_model(str(path))
    return path, MATRIX, lambda x: np.asarray(booster.inplace_predict(x))


def _linear() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, 3), torch.nn.ReLU()).eval()


def _torch_direct(module: Any) -> Direct:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(module(torch.from_numpy(x)).numpy())

    return run


def torchscript(directory: Path) -> Made:
    import torch

    module = _linear()
    path = directory / "model.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated upstream, still uploaded widely
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module, torch.from_numpy(X[:2]))  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    return path, MATRIX, _torch_direct(module)


def torch_export(directory: Path) -> Made:
    import torch

    module = _linear()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (torch.from_numpy(X[:2]),), dynamic_shapes=({0: batch},))
    path = directory / "model.pt2"
    torch.export.save(program, str(path))
    return path, None, _torch_direct(module)


def onnx(directory: Path) -> Made:
    import onnx as onnx_lib
    from onnx import TensorProto, helper, numpy_helper

    weights = RNG.normal(size=(FEATURES, 2)).astype(np.float32)
    bias = np.array([0.5, -0.5], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = directory / "model.onnx"
    onnx_lib.save(model, str(path))
    return path, None, lambda x: x @ weights + bias


def _keras_model() -> Any:
    import keras

    inputs = keras.Input(shape=(FEATURES,), name="x")
    outputs = keras.layers.Dense(2, name="y")(inputs)
    return keras.Model(inputs, outputs)


def keras(directory: Path) -> Made:
    model = _keras_model()
    path = directory / "model.keras"
    model.save(path)
    from keras import ops

    return path, None, lambda x: np.asarray(ops.convert_to_numpy(model(x, training=False)))


def savedmodel(directory: Path) -> Made:
    import tensorflow as tf

    model = _keras_model()
    export = directory / "saved"
    model.export(str(export), verbose=False)
    path = directory / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in export.rglob("*"):
            zf.write(file, file.relative_to(directory))
    reloaded = tf.saved_model.load(str(export))
    fn = reloaded.signatures["serving_default"]

    def direct(x: np.ndarray) -> np.ndarray:
        return np.asarray(next(iter(fn(x=tf.constant(x)).values())).numpy())

    return path, None, direct


def broken_onnx(directory: Path) -> Path:
    """An ONNX graph that loads but fails at run time (a Reshape no input can satisfy)."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [1], [7])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = directory / "broken.onnx"
    save(model, str(path))
    return path


def two_rows_only_onnx(directory: Path) -> Path:
    """An ONNX graph that passes validation (its sample has two rows) and raises at
    predict time for any other batch size: a model that fails on some requests."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "picky",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", FEATURES])],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [2], [2, FEATURES])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = directory / "picky.onnx"
    save(model, str(path))
    return path


def zip_slip(directory: Path) -> Path:
    """A SavedModel zip with an entry that would land outside the extraction folder."""
    path = directory / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("saved/saved_model.pb", b"")
        zf.writestr("../../escaped.txt", b"gotcha")
    return path


MAKERS: dict[str, Callable[[Path], Made]] = {
    "sklearn-skops": sklearn,
    "xgboost": xgboost,
    "torchscript": torchscript,
    "torch-export": torch_export,
    "onnx": onnx,
    "keras": keras,
    "tf-savedmodel": savedmodel,
}


def write_samples(directory: Path) -> None:
    """One tiny model per format (in a folder each), the signature the formats without
    one need, and a broken ONNX file: ``python -m tests.models DIR`` (README walkthrough)."""
    for fmt, make in MAKERS.items():
        folder = directory / fmt
        folder.mkdir(parents=True, exist_ok=True)
        path, _, _ = make(folder)
        print(f"{fmt:14} {path}")
    (directory / "signature.json").write_text(MATRIX.model_dump_json())
    print(f"{'signature':14} {directory / 'signature.json'}")
    print(f"{'broken onnx':14} {broken_onnx(directory)}")


if __name__ == "__main__":
    import sys

    write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "sample-models"))


def hostile_torchscript(directory: Path, canary: Path) -> Path:
    """A TorchScript model that behaves until its input asks it not to: x[0,0] == 1000
    reads ``canary`` (a platform file), 2000 allocates without bound, 3000 spins. The
    validation sample (small values) sees a plain linear model."""
    import torch

    class Hostile(torch.nn.Module):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mode = int(x[0, 0].item())
            if mode == 1000:
                stolen = torch.from_file(self.path, shared=False, size=16, dtype=torch.uint8)
                return stolen.to(torch.float32).reshape(1, 16).expand(x.shape[0], 16)
            if mode == 2000:
                hog: list[torch.Tensor] = []
                for _ in range(64):
                    hog.append(torch.ones(256 * 1024 * 1024, dtype=torch.uint8))
                total = 0
                for block in hog:
                    total = total + int(block.sum().item())
                return x * float(total)
            if mode == 3000:
                i = 0
                while i >= 0:
                    i = i + 1
                return x * float(i)
            return x * 2.0

    path = directory / "hostile.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(Hostile(str(canary)))
        torch.jit.save(scripted, str(path))
    return path


def slow_torchscript(directory: Path, iterations: int = 5_000_000) -> Path:
    """A TorchScript model whose every prediction (the validation sample's too) loops for
    a second or two: a slow model to validate."""
    import torch

    class Slow(torch.nn.Module):
        def __init__(self, iterations: int) -> None:
            super().__init__()
            self.iterations = iterations

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            total = 0
            for i in range(self.iterations):
                total = total + i % 7
            return x * float(total > 0)

    path = directory / "slow.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(Slow(iterations))
        torch.jit.save(scripted, str(path))
    return path
