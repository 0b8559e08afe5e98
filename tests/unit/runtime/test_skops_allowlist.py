"""skops files load only allow-listed classes, each the class its name says; a function
that a scikit-learn module merely imports (subprocess's, os's) never runs."""

from __future__ import annotations

import io
import json
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve_apps.runtime import LoaderError, Signature, TensorSpec, UnsafeArtifact, load_model
from serve_apps.runtime.loaders import sklearn as skops_loader
from tests.models import MATRIX, X, Y

FLOATS = Signature(inputs=[TensorSpec(name="x", dtype="float64", shape=[-1, 4])])


def _save(model: Any, path: Path) -> Path:
    import skops.io as sio

    sio.dump(model, path)
    return path


def _pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression())


def _forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, random_state=0)


def _boosting() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=5)


def _hist() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=5)


def _hist_categorical() -> Any:  # keeps partial(check_array): the one allowed function
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])


def _mlp() -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0)


def _neighbors() -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=3)


FEATURES = np.c_[np.arange(len(X)) % 4, X[:, 1:]].astype(np.float64)


@pytest.mark.parametrize(
    "make",
    [_pipeline, _forest, _boosting, _hist, _hist_categorical, _mlp, _neighbors],
    ids=lambda f: f.__name__,
)
def test_real_models_load_and_predict(tmp_path: Path, make: Callable[[], Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP's ConvergenceWarning on 20 iterations
        model = make().fit(FEATURES, Y)
    loaded = load_model("sklearn-skops", _save(model, tmp_path / "m.skops"), FLOATS, device="cpu")
    got = loaded.predict({"x": FEATURES[:9]})["predictions"]
    np.testing.assert_array_equal(got, model.predict(FEATURES[:9]))


def _json_node(value: Any, node_id: int) -> dict[str, Any]:
    kind = type(value).__name__
    return {
        "__class__": kind,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": node_id,
    }


def _call_node(module: str, name: str, args: list[Any], loader: str) -> dict[str, Any]:
    """A node that makes skops call ``module.name(*args)`` while loading: how skops
    rebuilds objects from ``__reduce__`` (ConstructorFromReduceNode, LossNode)."""
    items = [_json_node(a, 900 + i) for i, a in enumerate(args)]
    argv: dict[str, Any] = {"__class__": "tuple", "__module__": "builtins"}
    argv |= {"__loader__": "TupleNode", "content": items, "__id__": 990}
    node: dict[str, Any] = {"__class__": name, "__module__": module, "__loader__": loader}
    node["__id__"] = 991
    if loader == "ConstructorFromReduceNode":
        return node | {"content": argv}
    keys: dict[str, Any] = {"__class__": "list", "__module__": "builtins"}
    keys |= {"__loader__": "ListNode", "content": [], "__id__": 992}
    empty: dict[str, Any] = {"__class__": "dict", "__module__": "builtins"}
    empty |= {"__loader__": "DictNode", "content": {}, "key_types": keys, "__id__": 993}
    return node | {"__reduce__": {"args": argv}, "content": empty}


def _object_node(module: str, name: str) -> dict[str, Any]:
    return {"__class__": name, "__module__": module, "__loader__": "ObjectNode", "__id__": 994}


def _crafted(path: Path, node: dict[str, Any]) -> Path:
    """A genuine LogisticRegression file whose ``tol`` attribute is ``node`` instead."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    original = zipfile.ZipFile(io.BytesIO(sio.dumps(LogisticRegression().fit(X, Y))))
    schema = json.loads(original.read("schema.json"))
    schema["content"]["content"]["tol"] = node
    with zipfile.ZipFile(path, "w") as out:
        for name in original.namelist():
            data = json.dumps(schema).encode() if name == "schema.json" else original.read(name)
            out.writestr(name, data)
    return path


# callables that scikit-learn modules import from os and subprocess
MAKEDIRS = ("sklearn.datasets._base", "makedirs")
CHECK_OUTPUT = ("sklearn.utils._testing", "check_output")


def _payload(target: tuple[str, str], marker: Path) -> list[Any]:
    if target == MAKEDIRS:
        return [str(marker)]
    return [[sys.executable, "-c", f"open({str(marker)!r}, 'w')"]]


def test_the_crafted_payload_runs_when_skops_is_told_to_trust_it(tmp_path: Path) -> None:
    """The control for the test below: the file is a live exploit, not a broken file."""
    import skops.io as sio

    marker = tmp_path / "pwned"
    node = _call_node(*MAKEDIRS, _payload(MAKEDIRS, marker), "ConstructorFromReduceNode")
    path = _crafted(tmp_path / "evil.skops", node)
    assert sio.get_untrusted_types(file=path) == ["sklearn.datasets._base.makedirs"]
    sio.load(path, trusted=["sklearn.datasets._base.makedirs"])
    assert marker.exists()


@pytest.mark.parametrize("target", [MAKEDIRS, CHECK_OUTPUT], ids=["makedirs", "check_output"])
@pytest.mark.parametrize("loader", ["ConstructorFromReduceNode", "LossNode"])
def test_a_function_reexported_under_sklearn_is_refused_and_never_runs(
    tmp_path: Path, target: tuple[str, str], loader: str
) -> None:
    marker = tmp_path / "pwned"
    path = _crafted(tmp_path / "evil.skops", _call_node(*target, _payload(target, marker), loader))
    dotted = ".".join(target)
    with pytest.raises(UnsafeArtifact, match=f"allow-list: {dotted}$"):
        load_model("sklearn-skops", path, MATRIX, device="cpu")
    assert not marker.exists()


def test_a_reexport_is_refused_even_if_someone_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name must be where the object is defined: subprocess.check_output is not
    sklearn.utils._testing.check_output, whatever the list says."""
    dotted = ".".join(CHECK_OUTPUT)
    monkeypatch.setattr(skops_loader, "ALLOWED_FUNCTIONS", frozenset({dotted}))
    monkeypatch.setattr(skops_loader, "ALLOWED_CLASSES", skops_loader.ALLOWED_CLASSES | {dotted})
    marker = tmp_path / "pwned"
    node = _call_node(*CHECK_OUTPUT, _payload(CHECK_OUTPUT, marker), "ConstructorFromReduceNode")
    with pytest.raises(UnsafeArtifact, match=dotted):
        load_model("sklearn-skops", _crafted(tmp_path / "e.skops", node), MATRIX, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn.utils._testing", "TempMemmap"),  # a scikit-learn class, not a model part
        ("sklearn.cluster._kmeans", "KMeans"),  # skops trusts every estimator; we do not
    ],
)
def test_a_scikit_learn_class_off_the_list_is_refused(
    tmp_path: Path, module: str, name: str
) -> None:
    path = _crafted(tmp_path / "m.skops", _object_node(module, name))
    with pytest.raises(UnsafeArtifact, match=f"allow-list: {module}.{name}$"):
        load_model("sklearn-skops", path, MATRIX, device="cpu")


def test_every_allowed_name_is_the_class_or_function_defined_under_it() -> None:
    for name in skops_loader.ALLOWED_CLASSES | skops_loader.ALLOWED_FUNCTIONS:
        assert skops_loader._allowed(name), name


def test_a_tree_pointing_outside_itself_is_refused_before_any_prediction(
    tmp_path: Path,
) -> None:
    """skops warns that Tree's node indices are used unchecked by compiled code."""
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    model = DecisionTreeClassifier(max_depth=3).fit(X, Y)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6
    forged = Tree(model.n_features_in_, np.array([2], dtype=np.intp), 1)
    forged.__setstate__(state | {"nodes": nodes})
    model.tree_ = forged
    with pytest.raises(UnsafeArtifact, match="tree nodes is inconsistent"):
        load_model("sklearn-skops", _save(model, tmp_path / "m.skops"), MATRIX, device="cpu")


def test_a_boosted_tree_reading_a_feature_past_the_input_is_refused(tmp_path: Path) -> None:
    model = _hist().fit(X, Y)
    nodes = model._predictors[0][0].nodes
    nodes["feature_idx"][nodes["is_leaf"] == 0] = 4096
    with pytest.raises(UnsafeArtifact, match="tree nodes is inconsistent"):
        load_model("sklearn-skops", _save(model, tmp_path / "m.skops"), MATRIX, device="cpu")


def test_a_forest_member_wider_than_the_forest_is_refused(tmp_path: Path) -> None:
    model = _forest().fit(X, Y)
    model.n_features_in_ = 2  # the forest validates inputs to 2 columns; its trees read 4
    with pytest.raises(UnsafeArtifact, match="RandomForestClassifier members"):
        load_model("sklearn-skops", _save(model, tmp_path / "m.skops"), MATRIX, device="cpu")


def test_a_model_missing_its_fitted_parts_is_a_loader_error(tmp_path: Path) -> None:
    model = _hist().fit(X, Y)
    del model._bin_mapper
    with pytest.raises(LoaderError, match="inconsistent model"):
        load_model("sklearn-skops", _save(model, tmp_path / "m.skops"), MATRIX, device="cpu")


def test_boosting_whose_start_is_narrower_than_its_stages_is_refused(tmp_path: Path) -> None:
    """Gradient boosting's compiled loop writes stage k into column k of the start."""
    from sklearn.dummy import DummyClassifier

    three = np.arange(len(X)) % 3
    model = _boosting().fit(X, three)
    model.init_ = DummyClassifier(strategy="prior").fit(X, Y)  # two columns, not three
    with pytest.raises(UnsafeArtifact, match="boosting initial prediction"):
        load_model("sklearn-skops", _save(model, tmp_path / "m.skops"), MATRIX, device="cpu")
