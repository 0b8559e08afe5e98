"""scikit-learn estimators saved with skops; only allow-listed types may load."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio

from serve_apps.runtime.archives import check_zip
from serve_apps.runtime.loaders.base import (
    LoadedModel,
    Loader,
    LoaderError,
    UnsafeArtifact,
    require,
)
from serve_apps.runtime.signature import Signature, feature_matrix

# Every scikit-learn type a file names must be here, and every type skops does not
# trust by itself (it trusts numpy/scipy data and ufuncs): exact dotted names, each
# checked to be the class defined under that name (a re-export such as a module's
# ``from subprocess import check_output`` never passes). skops already trusts most
# estimators; listing them here too keeps obscure ones out.
ALLOWED_CLASSES = frozenset(
    {
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._logistic.LogisticRegressionCV",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._ridge.RidgeCV",
        "sklearn.linear_model._ridge.RidgeClassifier",
        "sklearn.linear_model._ridge.RidgeClassifierCV",
        "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.linear_model._coordinate_descent.LassoCV",
        "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._coordinate_descent.ElasticNetCV",
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn.linear_model._stochastic_gradient.SGDRegressor",
        "sklearn.linear_model._perceptron.Perceptron",
        "sklearn.linear_model._bayes.BayesianRidge",
        "sklearn.linear_model._huber.HuberRegressor",
        # SGD's loss objects
        "sklearn.linear_model._sgd_fast.Hinge",
        "sklearn.linear_model._sgd_fast.SquaredHinge",
        "sklearn.linear_model._sgd_fast.ModifiedHuber",
        "sklearn.linear_model._sgd_fast.EpsilonInsensitive",
        "sklearn.linear_model._sgd_fast.SquaredEpsilonInsensitive",
        # trees and ensembles, with the internal types fitted ones hold
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
        "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
        "sklearn.ensemble._bagging.BaggingClassifier",
        "sklearn.ensemble._bagging.BaggingRegressor",
        "sklearn.ensemble._voting.VotingClassifier",
        "sklearn.ensemble._voting.VotingRegressor",
        "sklearn.ensemble._stacking.StackingClassifier",
        "sklearn.ensemble._stacking.StackingRegressor",
        # the loss and link objects gradient boosting and linear models keep
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.Interval",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.PinballLoss",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyPinballLoss",
        "sklearn._loss._loss.CyHuberLoss",
        "sklearn._loss._loss.CyHalfPoissonLoss",
        "sklearn._loss._loss.CyHalfGammaLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyExponentialLoss",
        "sklearn.svm._classes.SVC",
        "sklearn.svm._classes.SVR",
        "sklearn.svm._classes.NuSVC",
        "sklearn.svm._classes.NuSVR",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.svm._classes.LinearSVR",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neighbors._unsupervised.NearestNeighbors",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        # metrics a KDTree / BallTree may hold (no weights, nothing to bound)
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.naive_bayes.BernoulliNB",
        "sklearn.naive_bayes.MultinomialNB",
        "sklearn.naive_bayes.ComplementNB",
        "sklearn.naive_bayes.CategoricalNB",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        # the optimizer an MLP keeps after fit
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.MaxAbsScaler",
        "sklearn.preprocessing._data.RobustScaler",
        "sklearn.preprocessing._data.Normalizer",
        "sklearn.preprocessing._data.Binarizer",
        "sklearn.preprocessing._data.QuantileTransformer",
        "sklearn.preprocessing._data.PowerTransformer",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.preprocessing._polynomial.PolynomialFeatures",
        "sklearn.preprocessing._discretization.KBinsDiscretizer",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.pipeline.Pipeline",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.compose._target.TransformedTargetRegressor",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.decomposition._pca.PCA",
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
        # VotingClassifier.named_estimators_
        "sklearn.utils._bunch.Bunch",
        # not scikit-learn: how skops stores some dtypes, and HistGradientBoosting's
        # categorical preprocessor (a partial of check_array, below)
        "numpy.dtype",
        "functools.partial",
    }
)
# Function references a file may name. HistGradientBoosting fitted with categorical
# features keeps ``partial(check_array, ...)``; nothing else real needs one (numpy
# and scipy ufuncs, as in FunctionTransformer(np.log1p), skops trusts itself).
ALLOWED_FUNCTIONS = frozenset({"sklearn.utils.validation.check_array"})


class SklearnModel(LoadedModel):
    def __init__(self, estimator: Any, signature: Signature) -> None:
        if len(signature.inputs) != 1:
            raise LoaderError("a scikit-learn model takes one input: a 2-D feature matrix")
        if not hasattr(estimator, "predict"):
            raise LoaderError(f"{type(estimator).__name__} has no predict()")
        self._estimator = estimator
        self.signature = signature
        # probabilities cost a second pass: only when the signature asks for them
        wanted = {spec.name for spec in signature.outputs}
        self._proba = "probabilities" in wanted and hasattr(estimator, "predict_proba")

    def predict_checked(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (features,) = inputs.values()
        out = {"predictions": np.asarray(self._estimator.predict(features))}
        if self._proba:
            out["probabilities"] = np.asarray(self._estimator.predict_proba(features))
        return out


class SkopsLoader(Loader):
    format = "sklearn-skops"
    carries_signature = True  # a fitted estimator knows its feature count

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        if not zipfile.is_zipfile(path):
            raise UnsafeArtifact("not a skops file (a pickle or joblib file is refused)")
        check_zip(path)  # skops reads every entry into memory
        untrusted = _untrusted_types(path)
        refused = sorted(name for name in untrusted if not _allowed(name))
        if refused:
            raise UnsafeArtifact(f"types outside the allow-list: {', '.join(refused)}")
        try:
            estimator = sio.load(path, trusted=sorted(untrusted))
        except Exception as exc:
            raise LoaderError(f"the skops file does not load: {exc}") from exc
        try:
            _check_compiled_state(estimator)
        except LoaderError:
            raise
        except Exception as exc:  # a missing or mistyped attribute: not a fitted model
            raise LoaderError(f"the skops file holds an inconsistent model: {exc}") from exc
        return SklearnModel(estimator, signature or _inferred(estimator))


def _inferred(estimator: Any) -> Signature:
    features = getattr(estimator, "n_features_in_", None)
    if not isinstance(features, int | np.integer) or features < 1:
        return require(None, "sklearn-skops")  # says to give one
    classes = getattr(estimator, "classes_", None)
    kind = np.asarray(classes).dtype.kind if classes is not None else "f"
    return feature_matrix(
        int(features),
        {"i": "int64", "u": "int64", "b": "bool"}.get(kind, "float32" if kind == "f" else "string"),
    )


def _untrusted_types(path: Path) -> set[str]:
    """What skops does not trust, and every scikit-learn type the file names (skops
    trusts all estimators; the allow-list is narrower)."""
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
        with zipfile.ZipFile(path) as zf:
            schema = json.loads(zf.read("schema.json"))
    except Exception as exc:
        raise LoaderError(f"not a readable skops file: {exc}") from exc
    return untrusted | {name for name in _named_types(schema) if name.startswith("sklearn.")}


def _named_types(schema: Any) -> Iterator[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(name, str):
                yield f"{module}.{name}"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _allowed(name: str) -> bool:
    if name in ALLOWED_CLASSES:
        return _defined_as(name, function=False)
    return name in ALLOWED_FUNCTIONS and _defined_as(name, function=True)


@functools.cache
def _defined_as(name: str, *, function: bool) -> bool:
    """True when importing ``name`` gives a class (or function) defined under exactly
    that name, not one that a module merely imports from elsewhere."""
    module, _, attr = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    kind = inspect.isfunction(found) if function else isinstance(found, type)
    return kind and f"{found.__module__}.{found.__qualname__}" == name


class PickleLoader(Loader):
    """Pickle or joblib files: loading them runs whatever code they hold, so the
    registry accepts them only when the operator allows it (ATRIUM_ALLOW_PICKLE)."""

    format = "pickle"

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        import joblib  # understands plain pickles as well as joblib's own files

        signature = require(signature, self.format)
        try:
            estimator = joblib.load(path)
        except Exception as exc:
            raise LoaderError(f"the pickle does not load: {exc}") from exc
        return SklearnModel(estimator, signature)


def _check_compiled_state(root: Any) -> None:
    """scikit-learn's compiled predict code indexes tree arrays without bounds checks
    (skops says so of Tree and TreePredictor): a file can pass the type check and still
    read or write out of bounds. Each such structure is checked against the number of
    features its estimator validates inputs to; probes run once everything is checked."""
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )
    from sklearn.neighbors._base import NeighborsBase
    from sklearn.tree._classes import BaseDecisionTree

    probes: list[Callable[[], None]] = []
    for obj in _reachable(root):
        if isinstance(obj, BaseDecisionTree):
            _check_decision_tree(obj)
        elif isinstance(obj, BaseForest):
            _check_members(obj)
        elif isinstance(obj, BaseGradientBoosting):
            probes.extend(_check_stages(obj))
        elif isinstance(obj, BaseHistGradientBoosting):
            probes.extend(_check_hist(obj))
        elif isinstance(obj, NeighborsBase):
            _check_neighbors(obj)
    for probe in probes:
        probe()


def _reachable(root: Any) -> Iterator[Any]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type | None):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif isinstance(obj, np.ndarray):
            stack.extend(obj.ravel() if obj.dtype == object else ())
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


def _refuse(what: str) -> UnsafeArtifact:
    return UnsafeArtifact(f"the model's {what} is inconsistent (a crafted file?)")


def _width(estimator: Any) -> int:
    width = getattr(estimator, "n_features_in_", None)
    if not isinstance(width, int | np.integer) or isinstance(width, bool) or width < 1:
        raise _refuse(f"{type(estimator).__name__} feature count")
    return int(width)


def _check_nodes(
    parents: np.ndarray, left: Any, right: Any, feature: Any, count: int, width: int
) -> None:
    """Split nodes: children after their parent (so every walk ends) and inside the
    tree, features inside the input."""
    ok = (left > parents) & (left < count) & (right > parents) & (right < count)
    if not np.all(ok & (feature >= 0) & (feature < width)):
        raise _refuse("tree nodes")


def _check_decision_tree(estimator: Any) -> None:
    from sklearn.tree._tree import Tree

    tree = getattr(estimator, "tree_", None)
    if tree is None:
        return
    width = _width(estimator)
    if not isinstance(tree, Tree) or tree.n_features != width:
        raise _refuse("decision tree")
    if not 0 < tree.node_count <= tree.capacity:
        raise _refuse("decision tree node count")
    nodes = tree.__getstate__()["nodes"]
    left, right = nodes["left_child"], nodes["right_child"]
    split = left != -1  # sklearn's TREE_LEAF
    if np.any(right[~split] != -1):
        raise _refuse("decision tree leaves")
    args = (left[split], right[split], nodes["feature"][split], len(nodes), width)
    _check_nodes(np.flatnonzero(split), *args)


def _check_members(ensemble: Any) -> None:
    """Forests and gradient boosting pass their own validated input to each tree."""
    from sklearn.tree._classes import BaseDecisionTree

    members = getattr(ensemble, "estimators_", None)
    if members is None:
        return
    width = _width(ensemble)
    for member in np.ravel(np.asarray(members, dtype=object)):
        fitted = isinstance(member, BaseDecisionTree) and hasattr(member, "tree_")
        if fitted and _width(member) != width:
            raise _refuse(f"{type(ensemble).__name__} members")


def _check_stages(model: Any) -> list[Callable[[], None]]:
    """Gradient boosting's compiled loop writes stage k's output to column k."""
    from sklearn.tree._tree import Tree

    stages = getattr(model, "estimators_", None)
    if stages is None:
        return []
    shaped = isinstance(stages, np.ndarray) and stages.dtype == object and stages.ndim == 2
    if not shaped or not stages.size:
        raise _refuse("boosting stages")
    if not all(isinstance(getattr(m, "tree_", None), Tree) for m in stages.flat):
        raise _refuse("boosting stages")
    _check_members(model)

    def columns() -> None:
        init = model._raw_predict_init(np.zeros((1, _width(model)), dtype=np.float32))
        if init.shape != (1, stages.shape[1]):
            raise _refuse("boosting initial prediction")

    return [columns]


def _check_hist(model: Any) -> list[Callable[[], None]]:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    stages = getattr(model, "_predictors", None)
    if stages is None:
        return []
    width = _width(model)
    categorical = np.asarray(model._bin_mapper.is_categorical_)
    if categorical.shape != (width,):
        raise _refuse("categorical features")
    for stage in stages:
        for predictor in stage:
            if isinstance(predictor, TreePredictor):
                _check_predictor(predictor, width, categorical)
    preprocessor = model._preprocessor

    def preprocessed() -> None:  # categorical columns are encoded before the trees
        shape = preprocessor.transform(np.zeros((1, width))).shape
        if preprocessor.n_features_in_ != width or shape != (1, width):
            raise _refuse("categorical preprocessing")

    return [] if preprocessor is None else [preprocessed]


def _check_predictor(predictor: Any, width: int, categorical: np.ndarray) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    nodes, bitsets = predictor.nodes, predictor.raw_left_cat_bitsets
    if not (
        isinstance(nodes, np.ndarray)
        and nodes.dtype == PREDICTOR_RECORD_DTYPE
        and nodes.ndim == 1
        and nodes.size
        and isinstance(bitsets, np.ndarray)
        and bitsets.ndim == 2
        and bitsets.shape[1] == 8  # one bit for each of 256 categories
    ):
        raise _refuse("gradient boosting tree")
    split = nodes["is_leaf"] == 0
    args = (nodes["left"][split], nodes["right"][split], nodes["feature_idx"][split])
    _check_nodes(np.flatnonzero(split), *args, nodes.size, width)
    by_category = split & (nodes["is_categorical"] != 0)
    if np.any(categorical[nodes["feature_idx"][by_category]] == 0) or np.any(
        nodes["bitset_idx"][by_category] >= len(bitsets)
    ):
        raise _refuse("categorical splits")


def _check_neighbors(model: Any) -> None:
    from sklearn.neighbors import BallTree, KDTree

    tree, fitted = getattr(model, "_tree", None), getattr(model, "_fit_X", None)
    if tree is None and fitted is None:
        return
    width = _width(model)
    if isinstance(fitted, np.ndarray) and (fitted.ndim != 2 or fitted.shape[1] != width):
        raise _refuse("neighbors' training data")
    if isinstance(tree, KDTree | BallTree):
        _check_binary_tree(
            tree.__getstate__(), width, bound_rows=2 if isinstance(tree, KDTree) else 1
        )


def _check_binary_tree(state: tuple[Any, ...], width: int, *, bound_rows: int) -> None:
    """KDTree / BallTree: the index permutes the samples, node ranges stay inside it,
    split nodes' children (2i+1, 2i+2) exist."""
    data, order, nodes, bounds, n_nodes = *state[:4], state[6]
    samples = data.shape[0]
    start, end = nodes["idx_start"], nodes["idx_end"]
    split = np.flatnonzero(nodes["is_leaf"] == 0)
    if not (
        data.ndim == 2
        and data.shape[1] == width
        and samples > 0
        and order.shape == (samples,)
        and np.array_equal(np.sort(order), np.arange(samples))
        and n_nodes == nodes.shape[0] > 0
        and bounds.shape == (bound_rows, n_nodes, width)
        and np.all((start >= 0) & (start <= end) & (end <= samples))
        and np.all(2 * split + 2 < n_nodes)
    ):
        raise _refuse("neighbors tree")
