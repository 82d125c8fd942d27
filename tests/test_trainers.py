"""The Trainer contract, run against every registered trainer and each task type it
supports (like scikit-learn's `parametrize_with_checks`): a new trainer that registers
itself is checked by this file without a line added to it.

A trainer only fits (and predicts); the coordinator scores. So the contract is `fit` plus
the trusted cross-validation (`core.cv.CrossValidation` on an `InProcessExecutor`; a
`custom_code` program goes to the sandbox), whose values are scikit-learn's
`cross_val_score` on the same folds, bit for bit."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from hyperpilot.cards import ModelCard, get_model_card
from hyperpilot.core.cv import CrossValidation, encode
from hyperpilot.core.loop import TrialHandle
from hyperpilot.core.types import Outcome, Suggestion, trial_seed
from hyperpilot.data import Dataset, load_dataset, split
from hyperpilot.errors import TaskError, TrialError
from hyperpilot.metrics import METRICS
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.task import Task
from hyperpilot.trainers import FittedModel, Trainer, get_trainer, register, trainers
from hyperpilot.trainers.base import _REGISTRY
from hyperpilot.trainers.code import BASELINE_PROGRAM, CUSTOM_CODE
from hyperpilot.trainers.torch_base import EpochTrainer

# images and text: their own data, in test_contracts.py, test_torch_trainers.py and test_text_trainer.py
NEEDS_OWN_DATA = ("torch_cnn", "lora_text")
CASES = [(name, tt) for name, t in sorted(trainers().items()) if name not in NEEDS_OWN_DATA for tt in t.card.task_types]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """OpenMP models (hist_gradient_boosting) crawl when their threads fight other work;
    the environment variable reaches trainers that run in a sandbox process."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


def _small(ref: str, n: int, labels: dict[Any, str] | None = None) -> Dataset:
    data = load_dataset(ref)
    rows = data.X.sample(n=n, random_state=0).index
    X, y = data.X.loc[rows].reset_index(drop=True), data.y.loc[rows].reset_index(drop=True)
    if labels:
        y = y.map(labels)  # string labels: the model must give them back
    return Dataset(data.name, X.iloc[:, :10], y, data.target)


@pytest.fixture(scope="module")
def datasets() -> dict[str, Dataset]:
    return {
        "binary": _small("sklearn:breast_cancer", 160, {0: "malignant", 1: "benign"}),
        "multiclass": _small("sklearn:wine", 150, {0: "barolo", 1: "grignolino", 2: "barbera"}),
        "regression": _small("sklearn:diabetes", 160),
    }


def _task(task_type: str, **kw: Any) -> Task:
    return Task(data="test", task_type=task_type, cv_folds=kw.pop("cv_folds", 2), **kw).resolved(task_type)  # type: ignore[arg-type]


def _program(name: str) -> str | None:
    """The program a `custom_code` job runs (the baseline); None for every other trainer."""
    return BASELINE_PROGRAM if name == CUSTOM_CODE else None


def _cv(X: pd.DataFrame, y: pd.Series, task: Task) -> CrossValidation:
    """The trusted objective, in this process (a program still goes to the sandbox)."""
    return CrossValidation(InProcessExecutor(), X, y, task, code_for=lambda h: (_program(h.model), {}))


def _evaluate(name: str, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task,
              cv: CrossValidation | None = None) -> Outcome:
    """Cross-validate `config` as trial 0 of a study would (a real Optuna trial takes the reports)."""
    trial = optuna.create_study(direction=task.direction).ask()
    handle = TrialHandle(trial, Suggestion(name, config, "default"), trial_seed(task.seed, 0))
    outcome = (cv or _cv(X, y, task))(handle)
    assert outcome.ok, outcome.error
    if isinstance(get_trainer(name), EpochTrainer):  # one value per epoch: the mean over the folds after it
        assert len(handle.steps) == config["epochs"] and handle.steps[-1] == pytest.approx(outcome.value)
    else:  # one value per fold: the running mean
        assert handle.steps == [pytest.approx(float(np.mean(outcome.steps[: i + 1]))) for i in range(len(outcome.steps))]
    return outcome


def _value(name: str, X: pd.DataFrame, y: pd.Series, task: Task) -> float:
    return float(_evaluate(name, get_trainer(name).card.default_config(), X, y, task).value)  # type: ignore[arg-type]


def test_every_card_has_a_trainer() -> None:
    from hyperpilot.cards import model_cards

    assert set(model_cards()) <= set(trainers())
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "task_type"), CASES)
def test_trainer_contract(name: str, task_type: str, datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer(name)
    assert isinstance(trainer, Trainer) and trainer.name == name and trainer.card.name == name
    data = datasets[task_type]
    task = _task(task_type)
    X_train, X_test, y_train, y_test = split(data, task)
    config = trainer.card.default_config()
    cv = _cv(X_train, y_train, task)

    # the default config cross-validates to a finite value, one per fold, scored here
    outcome = _evaluate(name, config, X_train, y_train, task, cv)
    assert len(outcome.steps) == task.cv_folds and not outcome.pruned and outcome.error == ""
    assert np.all(np.isfinite(outcome.steps)) and np.isfinite(outcome.value)  # type: ignore[arg-type]
    assert outcome.value == float(np.mean(outcome.steps))
    assert outcome.seconds > 0

    # the same seed gives the same values
    assert _evaluate(name, config, X_train, y_train, task, cv).steps == outcome.steps

    # fit on the training split (through the executor), predict and score the held-out split
    fitted, score = cv.refit(name, config, X_test, y_test, trial_seed(task.seed, 0), _program(name))
    model = FittedModel(fitted, cv.classes, [str(c) for c in X_train.columns])
    pred = model.predict(X_test)
    assert pred.shape == (len(X_test),)
    if task_type == "regression":
        assert np.issubdtype(pred.dtype, np.floating) and np.all(np.isfinite(pred))
        with pytest.raises(TaskError, match="no probabilities"):
            model.predict_proba(X_test)
    else:
        assert set(pred) <= set(y_train)  # original (string) labels, not codes
        if hasattr(model.pipeline, "predict_proba"):
            proba = model.predict_proba(X_test)
            assert proba.shape == (len(X_test), y_train.nunique())
            assert np.allclose(proba.sum(axis=1), 1.0)
        else:  # a plain SVC: a clear error, not an AttributeError
            with pytest.raises(TaskError, match="no probabilities"):
                model.predict_proba(X_test)
    assert np.isfinite(score)
    # a column order that differs from training does not matter: the model selects its features
    assert np.array_equal(model.predict(X_test[X_test.columns[::-1]]), pred)
    # the score is the metric of these predictions (checked for label metrics)
    if task.metric == "accuracy":
        assert score == pytest.approx(float(np.mean(pred == y_test.to_numpy())))

    # `fit` itself: in this process for installed trainers (the same model as the refit's);
    # a program never runs here
    codes, _ = encode(y_train, task)
    if name == CUSTOM_CODE:
        with pytest.raises(TrialError, match="never runs in-process"):
            trainer.fit(config, X_train, codes, task)
    else:
        direct = FittedModel(trainer.fit(config, X_train, codes, task), cv.classes, list(X_train.columns))
        assert np.array_equal(direct.predict(X_test), pred)


# -- trusted scoring is scikit-learn's scoring -----------------------------------------------
SCORERS = {"accuracy": ("accuracy", 1.0), "roc_auc": ("roc_auc", 1.0), "log_loss": ("neg_log_loss", -1.0),
           "rmse": ("neg_root_mean_squared_error", -1.0), "balanced_accuracy": ("balanced_accuracy", 1.0)}


@pytest.mark.parametrize(("name", "task_type", "metric"), [
    ("logistic_regression", "binary", "accuracy"),
    ("knn", "multiclass", "accuracy"),
    ("logistic_regression", "binary", "roc_auc"),   # decision function
    ("random_forest", "binary", "roc_auc"),         # probabilities (no decision function)
    ("svm", "binary", "roc_auc"),
    ("random_forest", "multiclass", "log_loss"),
    ("logistic_regression", "binary", "log_loss"),
    ("logistic_regression", "multiclass", "log_loss"),
    ("decision_tree", "multiclass", "balanced_accuracy"),
    ("ridge", "regression", "rmse"),
    ("hist_gradient_boosting", "regression", "rmse"),
])
def test_cross_validation_equals_sklearn_cross_val_score(name: str, task_type: str, metric: str,
                                                         datasets: dict[str, Dataset]) -> None:
    data = datasets[task_type]
    task = _task(task_type, metric=metric, cv_folds=3, data_seed=7)
    trainer = get_trainer(name)
    config = trainer.card.default_config()
    outcome = _evaluate(name, config, data.X, data.y, task)

    codes, _ = encode(data.y, task)
    folds = (KFold if task_type == "regression" else StratifiedKFold)(n_splits=3, shuffle=True, random_state=task.split_seed)
    scoring, sign = SCORERS[metric]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sign * cross_val_score(trainer.pipeline(config, data.X, task), data.X, codes, cv=folds, scoring=scoring)  # type: ignore[attr-defined]
    assert outcome.steps == expected.tolist()  # bit for bit, fold by fold
    assert outcome.value == float(np.mean(expected))


@pytest.mark.parametrize(
    ("name", "task_type", "bound"),
    [("decision_tree", "binary", 0.8), ("knn", "binary", 0.8), ("decision_tree", "multiclass", 0.7),
     ("knn", "multiclass", 0.7), ("ridge", "regression", 0.2), ("knn", "regression", 0.0)],
)
def test_trainer_beats_chance(name: str, task_type: str, bound: float, datasets: dict[str, Dataset]) -> None:
    """Not a benchmark: a sanity bound (balanced accuracy, R²) that catches label or sign mix-ups."""
    data = datasets[task_type]
    task = _task(task_type, metric="r2" if task_type == "regression" else "balanced_accuracy")
    assert _value(name, data.X, data.y, task) > bound


@pytest.mark.parametrize("task_type", ["binary", "multiclass"])
@pytest.mark.parametrize("name", ["svm", "logistic_regression"])
@pytest.mark.parametrize("metric", [m for m, spec in METRICS.items() if "binary" in spec.task_types])
def test_every_classification_metric(name: str, task_type: str, metric: str, datasets: dict[str, Dataset]) -> None:
    data = datasets[task_type]
    value = _value(name, data.X, data.y, _task(task_type, metric=metric, cv_folds=2))
    assert np.isfinite(value)
    if metric == "log_loss":
        assert value > 0  # natural sign, not sklearn's negated one
    else:
        assert 0 <= value <= 1


@pytest.mark.parametrize("metric", [m for m, spec in METRICS.items() if "regression" in spec.task_types])
def test_every_regression_metric(metric: str, datasets: dict[str, Dataset]) -> None:
    data = datasets["regression"]
    task = _task("regression", metric=metric, cv_folds=2)
    value = _value("ridge", data.X, data.y, task)
    if metric == "r2":
        assert 0 < value < 1
    else:
        assert value > 0  # errors are reported positive
    if metric == "mse":
        rmse = _value("ridge", data.X, data.y, task.model_copy(update={"metric": "rmse"}))
        assert rmse**2 == pytest.approx(value, rel=0.2)


def test_a_different_data_seed_changes_the_folds(datasets: dict[str, Dataset]) -> None:
    data = datasets["multiclass"]
    config = get_trainer("knn").card.default_config()
    a = _evaluate("knn", config, data.X, data.y, _task("multiclass", data_seed=0))
    b = _evaluate("knn", config, data.X, data.y, _task("multiclass", data_seed=1))
    c = _evaluate("knn", config, data.X, data.y, _task("multiclass", seed=5, data_seed=0))
    assert a.steps != b.steps
    assert a.steps == c.steps  # the optimiser seed leaves the objective alone


def test_config_changes_the_model(datasets: dict[str, Dataset]) -> None:
    data = datasets["binary"]
    task = _task("binary")
    one = _evaluate("knn", {"n_neighbors": 1, "p": 2}, data.X, data.y, task).value
    many = _evaluate("knn", {"n_neighbors": 25, "p": 1}, data.X, data.y, task).value
    assert one != many


def test_a_poor_trial_is_pruned_after_a_fold(datasets: dict[str, Dataset]) -> None:
    """The report channel: the running mean goes to the trial after each fold; when the
    study's pruner says stop, the job stops and the outcome is pruned."""
    data = datasets["binary"]
    task = _task("binary", cv_folds=4)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01))
    handle = TrialHandle(study.ask(), Suggestion("knn", {"n_neighbors": 5, "p": 2}, "bo"), 0)
    outcome = _cv(data.X, data.y, task)(handle)
    assert outcome.pruned and outcome.value is None and len(outcome.steps) == 1 and len(handle.steps) == 1


def test_mixed_columns_and_unseen_categories() -> None:
    rng = np.random.default_rng(0)
    n = 80
    X = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "flag": rng.choice([True, False], n)})
    X.loc[::5, "x"] = np.nan
    X.loc[::4, "c"] = None
    y = pd.Series(np.where(X.x.fillna(0) > 0, "up", "down"))
    task = _task("binary")
    codes, classes = encode(y, task)
    for name in ("knn", "random_forest", "logistic_regression"):
        trainer = get_trainer(name)
        model = FittedModel(trainer.fit(trainer.card.default_config(), X, codes, task), classes, list(X.columns))
        new = pd.DataFrame({"x": [0.5, np.nan], "c": ["zebra", None], "flag": [True, False]})
        assert set(model.predict(new)) <= {"up", "down"}
        assert np.isfinite(_evaluate(name, trainer.card.default_config(), X, y, task).value)  # type: ignore[arg-type]


def test_model_that_does_not_do_the_task_type() -> None:
    ridge = get_trainer("ridge")
    with pytest.raises(TaskError, match="does not do binary"):
        ridge.estimator(ridge.card.default_config(), _task("binary"))  # type: ignore[attr-defined]


def test_unknown_trainer() -> None:
    with pytest.raises(TaskError, match="unknown model 'xgboost'"):
        get_trainer("xgboost")


class ConstantTrainer(Trainer):
    """A minimal user trainer: predicts the most frequent class of the rows it fits on."""

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Any:
        return DummyClassifier(strategy="most_frequent").fit(X, y)


def test_register_a_new_trainer_with_its_own_card(monkeypatch: pytest.MonkeyPatch, datasets: dict[str, Dataset]) -> None:
    card = ModelCard.model_validate({
        "name": "constant", "title": "Constant", "family": "baseline", "description": "Majority class.",
        "task_types": ["binary"], "space": {"k": {"type": "int", "low": 1, "high": 3, "description": "unused"}},
        "default": {"k": 1},
    })
    monkeypatch.setattr("hyperpilot.trainers.base._REGISTRY", {**_REGISTRY})
    trainer = register(ConstantTrainer(card))
    assert get_trainer("constant") is trainer
    assert "constant" in trainers()
    assert get_model_card("constant", "binary") is card  # solve can look it up by name
    with pytest.raises(TaskError, match="does not do regression"):
        get_model_card("constant", "regression")
    # the coordinator scores it like any trainer: each fold's accuracy of the fit rows' majority class
    data = datasets["binary"]
    task = _task("binary", cv_folds=3)
    cv = _cv(data.X, data.y, task)
    outcome = _evaluate("constant", {"k": 1}, data.X, data.y, task, cv)
    expected = []
    for fit_rows, pred_rows in cv.folds:
        majority = np.bincount(cv.y[fit_rows]).argmax()
        expected.append(float(np.mean(cv.y[pred_rows] == majority)))
    assert outcome.steps == pytest.approx(expected)


@pytest.mark.parametrize(("task_type", "metric"), [("binary", "log_loss"), ("multiclass", "roc_auc")])
def test_svm_tuned_for_a_probability_metric_predicts_probabilities(task_type: str, metric: str, datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer("svm")
    data = datasets[task_type]
    task = _task(task_type, metric=metric)
    codes, classes = encode(data.y, task)
    model = FittedModel(trainer.fit(trainer.card.default_config(), data.X, codes, task), classes, list(data.X.columns))
    proba = model.predict_proba(data.X.head(7))
    assert proba.shape == (7, data.y.nunique()) and np.allclose(proba.sum(axis=1), 1.0)
    _, score = _cv(data.X, data.y, task).refit("svm", trainer.card.default_config(), data.X, data.y, 0)
    assert np.isfinite(score)


def test_an_unresolved_task_is_a_task_error(datasets: dict[str, Dataset]) -> None:
    data = datasets["binary"]
    with pytest.raises(TaskError, match="not resolved yet"):
        _cv(data.X, data.y, Task(data="x", metric="accuracy"))
    with pytest.raises(TaskError, match="not resolved yet"):
        _cv(data.X, data.y, Task(data="x", task_type="binary"))
