"""scikit-learn trainers: one `SklearnTrainer` per bundled model card.

Preprocessing (impute, one-hot, scale where the model needs it) is part of the pipeline,
so cross-validation never leaks statistics from a validation fold into training."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn import ensemble, linear_model, neighbors, neural_network, svm, tree
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from hyperpilot.cards.model import get_model_card
from hyperpilot.errors import TaskError
from hyperpilot.metrics import Metric, TaskType, get_metric
from hyperpilot.task import Task
from hyperpilot.trainers.base import Evaluation, FittedModel, Trainer, register

# model name -> (classifier, regressor, needs scaled inputs)
ESTIMATORS: dict[str, tuple[type | None, type | None, bool]] = {
    "random_forest": (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, False),
    "extra_trees": (ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor, False),
    "hist_gradient_boosting": (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor, False),
    "decision_tree": (tree.DecisionTreeClassifier, tree.DecisionTreeRegressor, False),
    "adaboost": (ensemble.AdaBoostClassifier, ensemble.AdaBoostRegressor, False),
    "logistic_regression": (linear_model.LogisticRegression, None, True),
    "ridge": (None, linear_model.Ridge, True),
    "lasso": (None, linear_model.Lasso, True),
    "svm": (svm.SVC, svm.SVR, True),
    "knn": (neighbors.KNeighborsClassifier, neighbors.KNeighborsRegressor, True),
    "mlp": (neural_network.MLPClassifier, neural_network.MLPRegressor, True),
    "mlp_sgd": (neural_network.MLPClassifier, neural_network.MLPRegressor, True),
}


class SklearnTrainer(Trainer):
    """Builds `preprocessing + estimator` from a card and a config."""

    def estimator(self, config: dict[str, Any], task: Task) -> BaseEstimator:
        clf, reg, _ = ESTIMATORS[self.name]
        cls = reg if task.task_type == "regression" else clf
        if cls is None:
            raise TaskError(f"model '{self.name}' does not do {task.task_type}")
        params = {**self.card.fixed, **config}
        if self.name in ("mlp", "mlp_sgd"):
            params["hidden_layer_sizes"] = (int(params["hidden_layer_sizes"]),)
        if "random_state" in cls().get_params():
            params["random_state"] = task.split_seed
        est = cls(**params)
        if cls is linear_model.LogisticRegression and task.task_type == "multiclass":
            est = OneVsRestClassifier(est)  # liblinear is binary only
        if cls is svm.SVC and (task.metric == "log_loss" or (task.metric == "roc_auc" and task.task_type == "multiclass")):
            # SVC has no predict_proba, which log_loss and one-vs-rest ROC AUC need
            est = CalibratedClassifierCV(est, ensemble=False)
        return est

    def pipeline(self, config: dict[str, Any], X: pd.DataFrame, task: Task) -> Pipeline:
        scale = ESTIMATORS[self.name][2]
        numeric = [c for c in X.columns if ptypes.is_numeric_dtype(X[c]) and not ptypes.is_bool_dtype(X[c])]
        categorical = [c for c in X.columns if c not in numeric]
        num_steps: list[Any] = [SimpleImputer(strategy="median", keep_empty_features=True)]
        if scale:
            num_steps.append(StandardScaler())
        pre = ColumnTransformer(
            [
                ("num", make_pipeline(*num_steps), numeric),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                        OneHotEncoder(handle_unknown="ignore", sparse_output=False, max_categories=50),
                    ),
                    categorical,
                ),
            ]
        )
        return Pipeline([("pre", pre), ("model", self.estimator(config, task))])

    def evaluate(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Evaluation:
        y_enc, _ = _encode(y, task)
        metric = _metric(task)
        cv_cls = KFold if task.task_type == "regression" else StratifiedKFold
        cv = cv_cls(n_splits=task.cv_folds, shuffle=True, random_state=task.split_seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            out = cross_validate(
                self.pipeline(config, X, task), X, y_enc, cv=cv,
                scoring=metric.scorer_for(_task_type(task)), error_score="raise",
            )
        folds = [float(v) * metric.sign for v in out["test_score"]]
        if not np.all(np.isfinite(folds)):
            raise ValueError(f"{metric.name} is not finite on some folds: {folds}")
        value = float(np.mean(folds))
        return Evaluation(
            value=value, fold_values=folds, fit_seconds=time.perf_counter() - start,
            metrics={metric.name: value, f"{metric.name}_std": float(np.std(folds))},
        )

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> FittedModel:
        y_enc, classes = _encode(y, task)
        pipe = self.pipeline(config, X, task)
        with warnings.catch_warnings():  # the same warnings as evaluate() silences
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            pipe = pipe.fit(X, y_enc)
        return FittedModel(pipe, classes, [str(c) for c in X.columns])

    def score(self, model: FittedModel, X: pd.DataFrame, y: pd.Series, task: Task) -> float:
        metric = _metric(task)
        if model.classes is not None:
            index = {c: i for i, c in enumerate(model.classes)}
            y = y.map(index)
            if y.isna().any():
                raise ValueError("the held-out split has classes the model never saw")
        scorer = get_scorer(metric.scorer_for(_task_type(task)))
        return float(scorer(model.pipeline, X[model.features], np.asarray(y))) * metric.sign


def _task_type(task: Task) -> TaskType:
    if task.task_type is None:
        raise TaskError("the task has no task type yet; call task.resolved(task_type) first")
    return task.task_type


def _metric(task: Task) -> Metric:
    if task.metric is None:
        raise TaskError("the task has no metric yet; call task.resolved(task_type) first")
    return get_metric(task.metric, _task_type(task))


def _encode(y: pd.Series, task: Task) -> tuple[np.ndarray, list[Any] | None]:
    if task.task_type == "regression":
        return y.to_numpy(dtype=float), None
    classes, codes = np.unique(y.to_numpy(), return_inverse=True)
    return codes, classes.tolist()


for _name in ESTIMATORS:
    register(SklearnTrainer(get_model_card(_name)))
