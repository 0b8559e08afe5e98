"""scikit-learn estimators saved with skops; only allow-listed types may load."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import zipfile
from collections.abc import Iterator
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
from serve_apps.runtime.signature import Signature

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
        "sklearn.linear_model._sgd_fast.Hinge",
        "sklearn.linear_model._sgd_fast.SquaredHinge",
        "sklearn.linear_model._sgd_fast.ModifiedHuber",
        "sklearn.linear_model._sgd_fast.EpsilonInsensitive",
        "sklearn.linear_model._sgd_fast.SquaredEpsilonInsensitive",

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

        "sklearn.utils._bunch.Bunch",,
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

    def load(self, path: Path, signature: Signature | None, *, device: str) -> LoadedModel:
        signature = require(signature, self.format)
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
        _check_compiled_state(estimator)
        return SklearnModel(estimator, signature)


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
