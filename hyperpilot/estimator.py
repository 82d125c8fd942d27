"""scikit-learn estimators over `Assistant.solve`: `AutoClassifier` and `AutoRegressor`.

    fit(X, y) ─► Task(data=(X, y), test_size=0, …) ─► Assistant.solve: a cross-validated
    search on every row (nothing held out: bring your own test data to `score`), then the
    best config refit on every row ─► best_estimator_ (the saved model), leaderboard_, …

Like every scikit-learn estimator, the constructor only stores its arguments and `fit`
does the work; the fitted attributes end in `_`. Defaults chosen for a library call:

- `llm="none"`: pure Bayesian optimisation. The embedded planner model costs seconds to
  load and about a second per proposal on a CPU, which a `fit` inside a script or a
  notebook should not pay unasked; pass "embedded" or an endpoint spec to use one.
- `memory=False`: a library call neither reads nor writes the trial memory under
  `HYPERPILOT_HOME` unless asked (`memory=True`).
- `sandbox=True`: trials run in sandboxed worker processes, as with the CLI;
  `sandbox=False` runs them in this process (faster to start, no isolation).

Input: a DataFrame (columns of any kind: numbers, strings, categories, missing values) or
a numeric array (columns named x0..xN). Bad input raises scikit-learn's usual ValueError;
what hyperpilot's own data checks find raises `InputError` (a `DataError` and a
`ValueError`), a parameter it cannot use `ParamError` (a `TaskError` and a `ValueError`).

Each `fit` is a study like any other (`hyperpilot studies show NAME`, `study_`): its
report and model sit in the study's folder, and `hyperpilot resume NAME` continues it.
Budget: `time_budget` (seconds, no trial cap unless `n_trials` is given too), `n_trials`,
or 20 trials when neither is given; `fit(X, y, time_budget=..., n_trials=...)` overrides
the constructor's for one call.
"""

from __future__ import annotations

from typing import Any, Literal

import joblib
import numpy as np
import optuna
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from hyperpilot import studies
from hyperpilot.agent import Assistant, Result
from hyperpilot.errors import DataError, TaskError
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.task import Task
from hyperpilot.trainers import FittedModel

__all__ = ["AutoClassifier", "AutoRegressor", "InputError", "ParamError"]
MIN_ROWS = 10  # as `data.load_dataset` asks


class InputError(DataError, ValueError):
    """Data that `fit` cannot use (too few rows, a single class, …): a `DataError`, and a
    `ValueError` as scikit-learn's tools expect."""


class ParamError(TaskError, ValueError):
    """A parameter that `fit` cannot use (an unknown model or metric, …): a `TaskError`,
    and a `ValueError` as scikit-learn's tools expect."""


class _AutoEstimator(BaseEstimator):
    """What both estimators share (see the module docstring)."""

    _kind: Literal["classifier", "regressor"]

    def __init__(
        self,
        models: list[str] | None = None,
        metric: str | None = None,
        n_trials: int | None = None,
        time_budget: float | None = None,
        cv_folds: int = 5,
        seed: int = 0,
        llm: str = "none",
        memory: bool = False,
        sampler: str = "tpe",
        workers: int = 1,
        sandbox: bool = True,
    ) -> None:
        self.models = models
        self.metric = metric
        self.n_trials = n_trials
        self.time_budget = time_budget
        self.cv_folds = cv_folds
        self.seed = seed
        self.llm = llm
        self.memory = memory
        self.sampler = sampler
        self.workers = workers
        self.sandbox = sandbox

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are imputed inside every model's pipeline
        tags.non_deterministic = False
        return tags

    def fit(self, X: Any, y: Any, time_budget: float | None = None, n_trials: int | None = None) -> Any:
        """Tune the models on (X, y) within the budget and refit the best on every row.
        `time_budget` (seconds) and `n_trials` override the constructor's for this call."""
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, skip_check_array=True)  # n_features_in_, feature_names_in_
            frame = X.reset_index(drop=True)
        else:
            values = validate_data(self, X, dtype="numeric", ensure_all_finite="allow-nan")
            frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
        labels = column_or_1d(y, warn=True)
        if len(labels) != len(frame):
            raise ValueError(f"X has {len(frame)} rows but y has {len(labels)} values")
        if len(frame) < MIN_ROWS:
            raise InputError(f"X has {len(frame)} sample(s); hyperpilot needs at least {MIN_ROWS} to cross-validate")
        task_type = self._task_type(labels)
        if task_type == "regression":
            labels = check_array(labels, ensure_2d=False, dtype="numeric", input_name="y")
        budget = time_budget if time_budget is not None else self.time_budget
        cap = n_trials if n_trials is not None else self.n_trials
        target = "target"
        while target in frame.columns:
            target += "_"
        fields: dict[str, Any] = {
            "data": (frame, pd.Series(labels)), "target": target, "task_type": task_type,
            "metric": self.metric, "models": list(self.models or []), "cv_folds": self.cv_folds, "seed": self.seed,
            "sampler": self.sampler, "test_size": 0,
        }
        if budget is not None:
            fields["timeout"] = budget
        if cap is not None:
            fields["n_trials"] = cap
        try:
            task = Task(**fields)
            assistant = Assistant(llm=self.llm, memory=True if self.memory else None, workers=self.workers,
                                  executor=None if self.sandbox else InProcessExecutor(workers=self.workers))
            result = assistant.solve(task)
        except DataError as e:
            raise e if isinstance(e, ValueError) else InputError(str(e)) from None
        except TaskError as e:
            raise e if isinstance(e, ValueError) else ParamError(str(e)) from None
        self._columns = [str(c) for c in frame.columns]
        self.result_: Result = result
        self.best_estimator_: FittedModel = joblib.load(result.model_path)
        self.best_model_ = result.best_model
        self.best_config_ = dict(result.best_config)
        self.best_score_ = result.cv_score
        self.study_name_ = result.study_name
        self.leaderboard_ = leaderboard(result.trials, maximize=result.task.direction == "maximize")
        if self._kind == "classifier":
            self.classes_ = self.best_estimator_.classes_
        return self

    @property
    def study_(self) -> optuna.Study:
        """The Optuna study of the last `fit` (loaded from the study storage by name)."""
        check_is_fitted(self, "study_name_")
        return studies.load_study(self.study_name_)

    def predict(self, X: Any) -> np.ndarray:
        frame = self._frame(X)
        return self.best_estimator_.predict(frame)

    def _frame(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "best_estimator_")
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, skip_check_array=True, reset=False)
            return X.rename(columns=str)
        values = validate_data(self, X, dtype="numeric", ensure_all_finite="allow-nan", reset=False)
        return pd.DataFrame(values, columns=self._columns)

    def _task_type(self, labels: np.ndarray) -> str:
        raise NotImplementedError


class AutoClassifier(ClassifierMixin, _AutoEstimator):
    """Tunes classifiers (model cards: hist_gradient_boosting, extra_trees and logistic_regression by
    default, any of `hyperpilot models`) for `metric` (accuracy by default; roc_auc, log_loss, f1, …) by cross-validated
    Bayesian optimisation; a scikit-learn classifier. Fitted attributes: `best_estimator_`,
    `best_model_`, `best_config_`, `best_score_` (mean CV score), `leaderboard_`, `study_`,
    `classes_`, `n_features_in_`, `feature_names_in_` (DataFrame input), `result_`."""

    _kind = "classifier"

    def _task_type(self, labels: np.ndarray) -> str:
        check_classification_targets(labels)
        return "binary" if len(np.unique(labels)) <= 2 else "multiclass"

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_`."""
        frame = self._frame(X)
        return self.best_estimator_.predict_proba(frame)


class AutoRegressor(RegressorMixin, _AutoEstimator):
    """Tunes regressors (model cards: hist_gradient_boosting, extra_trees and ridge by default) for `metric` (rmse by
    default; mae, r2, …) by cross-validated Bayesian optimisation; a scikit-learn regressor.
    Fitted attributes as `AutoClassifier`'s, without `classes_`."""

    _kind = "regressor"

    def _task_type(self, labels: np.ndarray) -> str:
        return "regression"


def leaderboard(trials: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """One row per trial of a study's trial table, best first: trial, model, params,
    cv_mean, cv_std, seconds, state (failed and pruned trials last)."""
    table = pd.DataFrame({
        "trial": trials["number"], "model": trials["model"], "params": trials["config"],
        "cv_mean": pd.to_numeric(trials["value"], errors="coerce"),
        "cv_std": pd.to_numeric(trials["cv_std"], errors="coerce") if "cv_std" in trials else np.nan,
        "seconds": pd.to_numeric(trials["seconds"], errors="coerce"), "state": trials["state"],
    })
    table = table.sort_values("cv_mean", ascending=not maximize, na_position="last", kind="stable")
    return table.reset_index(drop=True)
