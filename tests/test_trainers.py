"""The Trainer contract, run against every registered trainer and each task type it
supports (like scikit-learn's `parametrize_with_checks`): a new trainer that registers
itself is checked by this file without a line added to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from hyperpilot.cards import ModelCard, get_model_card
from hyperpilot.data import Dataset, load_dataset, split
from hyperpilot.errors import TaskError
from hyperpilot.metrics import METRICS
from hyperpilot.task import Task
from hyperpilot.trainers import Evaluation, FittedModel, Trainer, get_trainer, register, trainers
from hyperpilot.trainers.base import _REGISTRY

CASES = [(name, tt) for name, t in sorted(trainers().items()) for tt in t.card.task_types]


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

    # the default config cross-validates to a finite value, one per fold
    evaluation = trainer.evaluate(config, X_train, y_train, task)
    assert isinstance(evaluation, Evaluation)
    assert len(evaluation.fold_values) == task.cv_folds
    assert np.all(np.isfinite(evaluation.fold_values)) and np.isfinite(evaluation.value)
    assert evaluation.value == pytest.approx(np.mean(evaluation.fold_values))
    assert evaluation.fit_seconds > 0
    assert evaluation.metrics[str(task.metric)] == pytest.approx(evaluation.value)

    # the same seed gives the same value
    again = trainer.evaluate(config, X_train, y_train, task)
    assert again.fold_values == evaluation.fold_values

    # fit on the training split, predict and score the held-out split
    model = trainer.fit(config, X_train, y_train, task)
    assert isinstance(model, FittedModel)
    pred = model.predict(X_test)
    assert pred.shape == (len(X_test),)
    if task_type == "regression":
        assert np.issubdtype(pred.dtype, np.floating) and np.all(np.isfinite(pred))
    else:
        assert set(pred) <= set(y_train)  # original (string) labels, not codes
        if hasattr(model.pipeline, "predict_proba"):
            proba = model.predict_proba(X_test)
            assert proba.shape == (len(X_test), y_train.nunique())
            assert np.allclose(proba.sum(axis=1), 1.0)
        else:  # a plain SVC: a clear error, not an AttributeError
            with pytest.raises(TaskError, match="no probabilities"):
                model.predict_proba(X_test)
    if task_type == "regression":
        with pytest.raises(TaskError, match="no probabilities"):
            model.predict_proba(X_test)
    score = trainer.score(model, X_test, y_test, task)
    assert np.isfinite(score)
    # a column order that differs from training does not matter: the model selects its features
    assert np.array_equal(model.predict(X_test[X_test.columns[::-1]]), pred)
    # the score is the metric of these predictions (checked for label metrics)
    if task.metric == "accuracy":
        assert score == pytest.approx(float(np.mean(pred == y_test.to_numpy())))


@pytest.mark.parametrize(
    ("name", "task_type", "bound"),
    [("decision_tree", "binary", 0.8), ("knn", "binary", 0.8), ("decision_tree", "multiclass", 0.7),
     ("knn", "multiclass", 0.7), ("ridge", "regression", 0.2), ("knn", "regression", 0.0)],
)
def test_trainer_beats_chance(name: str, task_type: str, bound: float, datasets: dict[str, Dataset]) -> None:
    """Not a benchmark: a sanity bound (balanced accuracy, R²) that catches label or sign mix-ups."""
    trainer = get_trainer(name)
    data = datasets[task_type]
    task = _task(task_type, metric="r2" if task_type == "regression" else "balanced_accuracy")
    value = trainer.evaluate(trainer.card.default_config(), data.X, data.y, task).value
    assert value > bound


@pytest.mark.parametrize("task_type", ["binary", "multiclass"])
@pytest.mark.parametrize("name", ["svm", "logistic_regression"])
@pytest.mark.parametrize("metric", [m for m, spec in METRICS.items() if "binary" in spec.task_types])
def test_every_classification_metric(name: str, task_type: str, metric: str, datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer(name)
    data = datasets[task_type]
    task = _task(task_type, metric=metric, cv_folds=2)
    evaluation = trainer.evaluate(trainer.card.default_config(), data.X, data.y, task)
    assert np.isfinite(evaluation.value)
    if metric == "log_loss":
        assert evaluation.value > 0  # natural sign, not sklearn's negated one
    else:
        assert 0 <= evaluation.value <= 1


@pytest.mark.parametrize("metric", [m for m, spec in METRICS.items() if "regression" in spec.task_types])
def test_every_regression_metric(metric: str, datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer("ridge")
    data = datasets["regression"]
    task = _task("regression", metric=metric, cv_folds=2)
    value = trainer.evaluate(trainer.card.default_config(), data.X, data.y, task).value
    if metric == "r2":
        assert 0 < value < 1
    else:
        assert value > 0  # errors are reported positive
    if metric == "mse":
        rmse = trainer.evaluate(trainer.card.default_config(), data.X, data.y, task.model_copy(update={"metric": "rmse"})).value
        assert rmse**2 == pytest.approx(value, rel=0.2)


def test_a_different_data_seed_changes_the_folds(datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer("knn")
    data = datasets["multiclass"]
    a = trainer.evaluate(trainer.card.default_config(), data.X, data.y, _task("multiclass", data_seed=0))
    b = trainer.evaluate(trainer.card.default_config(), data.X, data.y, _task("multiclass", data_seed=1))
    c = trainer.evaluate(trainer.card.default_config(), data.X, data.y, _task("multiclass", seed=5, data_seed=0))
    assert a.fold_values != b.fold_values
    assert a.fold_values == c.fold_values  # the optimiser seed leaves the objective alone


def test_config_changes_the_model(datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer("knn")
    data = datasets["binary"]
    task = _task("binary")
    one = trainer.evaluate({"n_neighbors": 1, "p": 2}, data.X, data.y, task).value
    many = trainer.evaluate({"n_neighbors": 25, "p": 1}, data.X, data.y, task).value
    assert one != many


def test_mixed_columns_and_unseen_categories() -> None:
    rng = np.random.default_rng(0)
    n = 80
    X = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "flag": rng.choice([True, False], n)})
    X.loc[::5, "x"] = np.nan
    X.loc[::4, "c"] = None
    y = pd.Series(np.where(X.x.fillna(0) > 0, "up", "down"))
    task = _task("binary")
    for name in ("knn", "random_forest", "logistic_regression"):
        trainer = get_trainer(name)
        model = trainer.fit(trainer.card.default_config(), X, y, task)
        new = pd.DataFrame({"x": [0.5, np.nan], "c": ["zebra", None], "flag": [True, False]})
        assert set(model.predict(new)) <= {"up", "down"}


def test_model_that_does_not_do_the_task_type() -> None:
    ridge = get_trainer("ridge")
    with pytest.raises(TaskError, match="does not do binary"):
        ridge.estimator(ridge.card.default_config(), _task("binary"))  # type: ignore[attr-defined]


def test_unknown_trainer() -> None:
    with pytest.raises(TaskError, match="unknown model 'xgboost'"):
        get_trainer("xgboost")


class ConstantTrainer(Trainer):
    """A minimal user trainer: predicts the most frequent class."""

    def evaluate(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Evaluation:
        share = float(y.value_counts(normalize=True).max())
        return Evaluation(share, [share] * task.cv_folds, 0.001, {"accuracy": share})

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> FittedModel:
        raise NotImplementedError

    def score(self, model: FittedModel, X: pd.DataFrame, y: pd.Series, task: Task) -> float:
        raise NotImplementedError


def test_register_a_new_trainer_with_its_own_card(monkeypatch: pytest.MonkeyPatch) -> None:
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


@pytest.mark.parametrize(("task_type", "metric"), [("binary", "log_loss"), ("multiclass", "roc_auc")])
def test_svm_tuned_for_a_probability_metric_predicts_probabilities(task_type: str, metric: str, datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer("svm")
    data = datasets[task_type]
    task = _task(task_type, metric=metric)
    model = trainer.fit(trainer.card.default_config(), data.X, data.y, task)
    proba = model.predict_proba(data.X.head(7))
    assert proba.shape == (7, data.y.nunique()) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.isfinite(trainer.score(model, data.X, data.y, task))


def test_an_unresolved_task_is_a_task_error(datasets: dict[str, Dataset]) -> None:
    trainer = get_trainer("knn")
    data = datasets["binary"]
    with pytest.raises(TaskError, match="no task type yet"):
        trainer.evaluate(trainer.card.default_config(), data.X, data.y, Task(data="x", metric="accuracy"))
    with pytest.raises(TaskError, match="no metric yet"):
        trainer.evaluate(trainer.card.default_config(), data.X, data.y, Task(data="x", task_type="binary"))
