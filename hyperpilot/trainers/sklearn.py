"""scikit-learn trainers: one `SklearnTrainer` per bundled model card.

Preprocessing (impute, one-hot, scale where the model needs it) is part of the pipeline,
so cross-validation never leaks statistics from a validation fold into training."""

from __future__ import annotations

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
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from hyperpilot.cards.model import get_model_card
from hyperpilot.errors import TaskError
from hyperpilot.task import Task
from hyperpilot.trainers.base import Trainer, register

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
        return Pipeline([("pre", preprocessor(X, scale=ESTIMATORS[self.name][2])), ("model", self.estimator(config, task))])

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Pipeline:
        pipe = self.pipeline(config, X, task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            return pipe.fit(X, y)


def preprocessor(X: pd.DataFrame, scale: bool) -> ColumnTransformer:
    """Impute numeric columns (median; standardised when `scale`) and one-hot encode the
    others (most frequent value for missing ones), fitted on the rows it is fitted on."""
    numeric = [c for c in X.columns if ptypes.is_numeric_dtype(X[c]) and not ptypes.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    num_steps: list[Any] = [SimpleImputer(strategy="median", keep_empty_features=True)]
    if scale:
        num_steps.append(StandardScaler())
    return ColumnTransformer(
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


for _name in ESTIMATORS:
    register(SklearnTrainer(get_model_card(_name)))
