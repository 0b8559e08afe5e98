"""Every format loads through one interface and predicts exactly as its framework does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serve_apps.runtime import (
    FORMATS,
    Signature,
    TensorSpec,
    UnsafeArtifact,
    load_model,
    sample_inputs,
)
from serve_apps.runtime.loaders import SELF_DESCRIBING, loader_for
from tests.models import MAKERS, X

HEAVY = {"keras", "tf-savedmodel"}  # TensorFlow's import alone takes seconds


def _formats() -> list[object]:
    return [pytest.param(f, marks=pytest.mark.slow) if f in HEAVY else f for f in FORMATS]


@pytest.mark.parametrize("fmt", _formats())
def test_runtime_predicts_like_the_framework(fmt: str, tmp_path: Path) -> None:
    path, signature, direct = MAKERS[fmt](tmp_path)
    model = load_model(fmt, path, signature, device="cpu")
    (name,) = [spec.name for spec in model.signature.inputs]
    outputs = model.predict({name: X[:5]})
    first = next(iter(outputs.values()))
    np.testing.assert_allclose(first, direct(X[:5]), rtol=1e-5, atol=1e-6)
    # the signature is complete enough to build a sample, as the registry's check does
    assert next(iter(model.predict(sample_inputs(model.signature)).values())).shape[0] == 2


def test_every_format_has_a_maker() -> None:
    assert set(MAKERS) == set(FORMATS)


def test_the_self_describing_list_matches_the_loaders() -> None:
    described = {fmt for fmt in FORMATS if loader_for(fmt).carries_signature}
    assert described == SELF_DESCRIBING


def test_pickle_loads_only_when_the_operator_allows_it(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import LinearRegression

    path = tmp_path / "model.joblib"
    joblib.dump(LinearRegression().fit(X, X[:, 0]), path)
    signature = Signature(inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, 4])])
    with pytest.raises(UnsafeArtifact, match="refused"):
        load_model("pickle", path, signature, device="cpu")
    model = load_model("joblib", path, signature, device="cpu", allow_pickle=True)
    np.testing.assert_allclose(model.predict({"x": X[:3]})["predictions"], X[:3, 0], rtol=1e-4)


@pytest.mark.parametrize("fmt", ["xgboost", "sklearn-skops"])
def test_a_feature_matrix_signature_is_inferred_when_none_is_given(
    tmp_path: Path, fmt: str
) -> None:
    path, _, direct = MAKERS[fmt](tmp_path)
    model = load_model(fmt, path, None, device="cpu")
    assert model.signature.inferred
    (spec,) = model.signature.inputs
    assert (spec.name, spec.dtype, spec.shape) == ("x", "float32", [-1, X.shape[1]])
    np.testing.assert_allclose(
        model.predict({"x": X[:5]})["predictions"], direct(X[:5]), rtol=1e-5, atol=1e-6
    )
