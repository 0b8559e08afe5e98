"""Tiny sample models of every format, trained and saved on the spot (nothing is
downloaded): what ``atrium samples DIR`` writes for a first session, and what the tests
and benchmarks serve.

Each maker writes the artifact under ``directory`` and returns (path, signature or None
when the format carries its own, a direct predict function for comparison). ONNX needs
the ``onnx`` package, torch and TensorFlow the ``ml`` extra (as serving those formats does).
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


MAKERS: dict[str, Callable[[Path], Made]] = {
    "sklearn-skops": sklearn,
    "xgboost": xgboost,
    "torchscript": torchscript,
    "torch-export": torch_export,
    "onnx": onnx,
    "keras": keras,
    "tf-savedmodel": savedmodel,
}


CUSTOMERS_CSV = """customer_id,age,tenure_months,monthly_spend,churned
1,34,12,49.9,0
2,51,48,89.0,0
3,23,2,19.9,1
4,45,30,59.5,0
5,29,5,29.9,1
6,62,70,99.0,0
7,38,18,39.9,0
8,27,3,24.5,1
"""


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


def write_samples(directory: Path, formats: list[str] | None = None) -> list[tuple[str, Path]]:
    """One tiny model per format (a folder each), the signature the formats without one
    may be given, a broken ONNX file and a small CSV dataset; returns what was written."""
    written = []
    for fmt, make in MAKERS.items():
        if formats is not None and fmt not in formats:
            continue
        folder = directory / fmt
        folder.mkdir(parents=True, exist_ok=True)
        written.append((fmt, make(folder)[0]))
    (directory / "signature.json").write_text(MATRIX.model_dump_json())
    written.append(("signature", directory / "signature.json"))
    written.append(("broken onnx", broken_onnx(directory)))
    (directory / "customers.csv").write_text(CUSTOMERS_CSV)
    written.append(("dataset", directory / "customers.csv"))
    return written
