"""Hostile, broken or mislabelled artifacts fail with a message a user can act on."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from serve_apps.runtime import InputError, LoaderError, UnsafeArtifact, load_model
from tests.models import MATRIX, X, broken_onnx, onnx, sklearn, torchscript, xgboost, zip_slip


def test_pickles_are_refused_even_when_named_skops(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(LogisticRegression()))
    with pytest.raises(UnsafeArtifact, match="pickle"):
        load_model("sklearn-skops", path, MATRIX, device="cpu")
    with pytest.raises(UnsafeArtifact, match="arbitrary code"):
        load_model("pickle", path, MATRIX, device="cpu")


def test_skops_with_a_function_reference_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "model.skops"
    sio.dump(FunctionTransformer(func=os.system), path)
    with pytest.raises(UnsafeArtifact, match="system"):
        load_model("sklearn-skops", path, MATRIX, device="cpu")


@pytest.mark.parametrize("declared", ["xgboost", "sklearn-skops", "torchscript", "torch-export"])
def test_wrong_format_declared(tmp_path: Path, declared: str) -> None:
    path, _, _ = onnx(tmp_path)
    with pytest.raises(LoaderError):
        load_model(declared, path, MATRIX, device="cpu")


@pytest.mark.parametrize("maker", [onnx, xgboost, sklearn])
def test_truncated_and_empty_files(tmp_path: Path, maker: object) -> None:
    path, signature, _ = maker(tmp_path)  # type: ignore[operator]
    fmt = {onnx: "onnx", xgboost: "xgboost", sklearn: "sklearn-skops"}[maker]  # type: ignore[index]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoaderError):
        load_model(fmt, path, signature, device="cpu")
    path.write_bytes(b"")
    with pytest.raises(LoaderError):
        load_model(fmt, path, signature, device="cpu")


def test_zip_slip_savedmodel_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = zip_slip(tmp_path)
    with pytest.raises(UnsafeArtifact, match="escapes"):
        load_model("tf-savedmodel", path, None, device="cpu")
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_onnx_graph_that_fails_at_run_time(tmp_path: Path) -> None:
    loaded = load_model("onnx", broken_onnx(tmp_path), device="cpu")
    with pytest.raises(LoaderError, match="run time"):
        loaded.predict({"x": X[:2]})


def test_inputs_are_checked_by_name_shape_and_dtype(tmp_path: Path) -> None:
    path, _, _ = onnx(tmp_path)
    model = load_model("onnx", path, device="cpu")
    with pytest.raises(InputError, match=r"missing input\(s\): x"):
        model.predict({"features": X[:2]})
    with pytest.raises(InputError, match=r"input 'x': expected shape \[-1, 4\], got \[2, 3\]"):
        model.predict({"x": X[:2, :3]})
    with pytest.raises(InputError, match="input 'x': expected float32, got <U1"):
        model.predict({"x": np.full((2, 4), "a")})
    assert model.predict({"x": X[:2].astype(np.float64)})["y"].dtype == np.float32


def test_formats_without_a_signature_ask_for_one(tmp_path: Path) -> None:
    path, _, _ = torchscript(tmp_path)
    with pytest.raises(LoaderError, match="give a signature"):
        load_model("torchscript", path, None, device="cpu")
    with pytest.raises(LoaderError, match="unknown format"):
        load_model("caffe", path, None, device="cpu")


def test_symlinks_in_a_savedmodel_zip_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    link = zipfile.ZipInfo("saved/variables")
    link.external_attr = (0o120777) << 16  # a symbolic link
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(link, "/etc")
    with pytest.raises(UnsafeArtifact, match="not a plain file"):
        load_model("tf-savedmodel", path, None, device="cpu")
