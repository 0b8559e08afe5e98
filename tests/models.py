"""The tests' models: the tiny samples of every format (``serve_apps.runtime.samples``,
what ``atrium samples`` writes) and hostile or broken ones made for the tests.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from serve_apps.runtime.samples import (
    FEATURES,
    MAKERS,
    MATRIX,
    RNG,
    Direct,
    Made,
    X,
    Y,
    broken_onnx,
    keras,
    onnx,
    savedmodel,
    sklearn,
    torch_export,
    torchscript,
    xgboost,
)


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


__all__ = [
    "FEATURES",
    "MAKERS",
    "MATRIX",
    "RNG",
    "Direct",
    "Made",
    "X",
    "Y",
    "broken_onnx",
    "hostile_torchscript",
    "keras",
    "onnx",
    "savedmodel",
    "sklearn",
    "slow_torchscript",
    "torch_export",
    "torchscript",
    "two_rows_only_onnx",
    "xgboost",
    "zip_slip",
]
