"""The scikit-learn interface: `AutoClassifier` / `AutoRegressor` fit real studies and pass
scikit-learn's own estimator checks; the model a solve saves is a scikit-learn estimator."""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from hyperpilot import Assistant, AutoClassifier, AutoRegressor, DataError, TaskError, studies
from hyperpilot.estimator import InputError, ParamError
from hyperpilot.trainers import FittedModel


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


def _churn(n: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"tenure": rng.integers(1, 72, n).astype(float), "contract": rng.choice(["monthly", "yearly"], n),
                      "charges": rng.normal(70, 20, n)})
    X.loc[::7, "charges"] = np.nan
    y = pd.Series(np.where((X.contract == "monthly") & (X.tenure < 40), "left", "stayed"), name="churn")
    return X, y


def test_classifier_end_to_end_in_the_sandbox() -> None:
    X, y = _churn()
    clf = AutoClassifier(models=["logistic_regression", "decision_tree"], n_trials=3, cv_folds=2)
    assert clf.get_params()["n_trials"] == 3 and not hasattr(clf, "best_estimator_")  # the constructor only stores
    assert clf.fit(X, y) is clf
    assert is_classifier(clf) and list(clf.classes_) == ["left", "stayed"]
    assert clf.n_features_in_ == 3 and list(clf.feature_names_in_) == ["tenure", "contract", "charges"]
    assert clf.best_model_ in ("logistic_regression", "decision_tree") and set(clf.best_config_)
    assert set(clf.predict(X)) <= {"left", "stayed"} and clf.score(X, y) > 0.8
    proba = clf.predict_proba(X.iloc[:5])
    assert proba.shape == (5, 2) and np.allclose(proba.sum(axis=1), 1)

    board = clf.leaderboard_
    assert list(board.columns) == ["trial", "model", "params", "cv_mean", "cv_std", "seconds", "state"]
    assert len(board) == 3 and board.cv_mean.iloc[0] == pytest.approx(clf.best_score_)
    assert list(board.cv_mean) == sorted(board.cv_mean, reverse=True)  # accuracy: best (highest) first
    assert clf.result_.test_score is None and clf.result_.task.test_size == 0  # every row for CV and the refit

    saved = joblib.load(clf.result_.model_path)  # the saved model is an estimator too
    assert is_classifier(saved) and list(saved.classes_) == ["left", "stayed"]
    assert saved.score(X, y) == pytest.approx(clf.score(X, y))

    study = clf.study_  # a study like any other: its stored task reads the table from the study folder
    stored = studies.stored_task(study)
    assert stored.data.endswith(".parquet") and stored.data.startswith(str(studies.study_dir(study.study_name)))
    more = Assistant(llm="none", memory=False).resume(study.study_name, n_trials=4)
    assert more.n_trials == 4


def test_regressor_with_a_time_budget_in_process() -> None:
    X, y = load_diabetes(return_X_y=True)
    reg = AutoRegressor(models=["ridge"], cv_folds=2, sandbox=False, time_budget=600)
    reg.fit(X, y, time_budget=3)  # fit's budget wins for this call; no trial cap
    assert reg.result_.task.n_trials is None and reg.result_.task.timeout == 3
    assert is_regressor(reg) and not hasattr(reg, "classes_") and not hasattr(reg, "feature_names_in_")
    assert len(reg.leaderboard_) >= 1 and list(reg.leaderboard_.cv_mean.dropna()) == sorted(reg.leaderboard_.cv_mean.dropna())
    assert reg.predict(X[:4]).shape == (4,) and reg.score(X, y) > 0.3  # R² of the refit ridge
    assert clone(reg).get_params() == reg.get_params()
    again = pickle.loads(pickle.dumps(reg))
    assert np.allclose(again.predict(X[:4]), reg.predict(X[:4]))
    with pytest.raises(ValueError, match="X has 3 features, but AutoRegressor is expecting 10"):
        reg.predict(X[:4, :3])


def test_bad_input_is_one_clear_line() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(InputError, match=r"^X has 5 sample\(s\); hyperpilot needs at least 10") as info:
        AutoClassifier(sandbox=False).fit(X[:5], y[:5])
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    with pytest.raises(ParamError, match="unknown model") as bad:
        AutoClassifier(models=["xgboostt"], n_trials=1, sandbox=False).fit(X, y)
    assert isinstance(bad.value, TaskError) and isinstance(bad.value, ValueError)
    with pytest.raises(ValueError, match="Unknown label type"):
        AutoClassifier(sandbox=False).fit(X, np.linspace(0, 1, len(X)))  # a continuous target is not for a classifier


def test_fitted_model_is_an_sklearn_estimator_and_old_pickles_load() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    labels = np.array(["setosa", "versicolor", "virginica"])
    pipe = LogisticRegression(max_iter=500).fit(X, y)
    model = FittedModel(pipe, labels.tolist(), list(X.columns))
    assert is_classifier(model) and model.n_features_in_ == 4 and list(model.classes_) == list(labels)
    assert model.score(X, labels[y]) == pytest.approx((pipe.predict(X) == y).mean())
    assert np.array_equal(model.predict(X.to_numpy()), model.predict(X))  # an array: one column per feature
    with pytest.raises(DataError, match="X lacks column"):
        model.predict(X.drop(columns=[X.columns[0]]))

    class Old:  # what a model.joblib saved before FittedModel became an estimator pickles to
        def __reduce_ex__(self, protocol: Any) -> Any:
            state = {"pipeline": pipe, "classes": labels.tolist(), "features": list(X.columns)}  # its __dict__
            return copyreg._reconstructor, (FittedModel, object, None), state

    old = pickle.loads(pickle.dumps(Old()))
    assert isinstance(old, FittedModel) and is_classifier(old) and old.score(X, labels[y]) == model.score(X, labels[y])

    reg = FittedModel(pipe, None, list(X.columns))
    assert is_regressor(reg) and not is_classifier(reg) and not hasattr(reg, "classes_")


# scikit-learn's own estimator checks: each fit is a real one-trial study in this process (the
# fastest cards, so the ~100 fits stay short). None is expected to fail: scikit-learn's usual
# ValueErrors come from its own validation, hyperpilot's data checks raise InputError (a ValueError).
@pytest.mark.slow
@parametrize_with_checks([AutoClassifier(models=["logistic_regression"], n_trials=1, cv_folds=2, sandbox=False),
                          AutoRegressor(models=["ridge"], n_trials=1, cv_folds=2, sandbox=False)])
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)
