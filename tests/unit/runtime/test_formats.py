"""Every format loads through one interface and predicts exactly as its framework does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serve_apps.runtime import FORMATS, load_model, sample_inputs
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
