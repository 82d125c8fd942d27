"""Task and metrics: what a user asks for is checked up front, with one-line TaskErrors."""

from __future__ import annotations

import re

import pytest

from hyperpilot.errors import HyperpilotError, TaskError
from hyperpilot.metrics import DEFAULT_METRIC, METRICS, get_metric
from hyperpilot.task import Task


def test_defaults() -> None:
    t = Task(data="sklearn:iris")
    assert (t.n_trials, t.cv_folds, t.seed, t.sampler, t.metric, t.task_type) == (20, 5, 0, "tpe", None, None)
    assert t.split_seed == 0
    assert Task(data="x.csv", seed=3).split_seed == 3
    assert Task(data="x.csv", seed=3, data_seed=7).split_seed == 7


@pytest.mark.parametrize(("given", "name"), [("roc_auc", "roc_auc"), ("ROC-AUC", "roc_auc"), ("F1", "f1"), ("log-loss", "log_loss")])
def test_metric_names_are_normalised(given: str, name: str) -> None:
    assert Task(data="x.csv", metric=given).metric == name


def test_unknown_metric() -> None:
    with pytest.raises(TaskError) as info:
        Task(data="x.csv", metric="precision_at_k")
    msg = str(info.value)
    assert "unknown metric 'precision_at_k'" in msg
    for name in METRICS:
        assert name in msg  # the user sees what to choose from
    assert not isinstance(info.value, ValueError)


@pytest.mark.parametrize(("metric", "task_type"), [("rmse", "binary"), ("r2", "multiclass"), ("f1", "regression"), ("roc_auc", "regression")])
def test_metric_must_fit_the_task_type(metric: str, task_type: str) -> None:
    with pytest.raises(TaskError, match=f"metric '{metric}' does not apply to a {task_type} task"):
        Task(data="x.csv", metric=metric, task_type=task_type)


def test_metric_checked_again_when_the_task_type_is_inferred() -> None:
    task = Task(data="x.csv", metric="rmse")  # fine until the data says "binary"
    with pytest.raises(TaskError, match="does not apply to a binary task"):
        task.resolved("binary")


def test_unknown_sampler() -> None:
    with pytest.raises(TaskError, match="unknown sampler 'smac'; choose one of tpe, gp, random, qmc, cmaes, nsga2"):
        Task(data="x.csv", sampler="smac")
    for ok in ("tpe", "gp", "random", "qmc", "cmaes", "nsga2"):
        assert Task(data="x.csv", sampler=ok).sampler == ok


def test_a_registered_sampler_is_a_valid_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from hyperpilot import samplers

    monkeypatch.setattr(samplers, "SAMPLERS", dict(samplers.SAMPLERS))
    samplers.register_sampler("mine", lambda seed, n, parallel: optuna.samplers.RandomSampler(seed=seed))
    assert Task(data="x.csv", sampler="mine").sampler == "mine"
    assert isinstance(samplers.make_sampler("mine", 0, 10), optuna.samplers.RandomSampler)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "../up", "-leading", "x" * 121, "ümlaut", "semi;colon"])
def test_bad_study_name(name: str) -> None:
    with pytest.raises(TaskError, match="study name"):
        Task(data="x.csv", study_name=name)


@pytest.mark.parametrize("name", ["churn", "churn-rf_2024.v2", "a+b", "X" * 120])
def test_good_study_name(name: str) -> None:
    assert Task(data="x.csv", study_name=name).study_name == name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task_type": "ranking"}, "task_type"),
        ({"n_trials": 0}, "n_trials"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"cv_folds": 50}, "cv_folds"),
        ({"test_size": -0.1}, "test_size"),  # 0 is allowed: nothing held out (issue 15)
        ({"timeout": -1}, "timeout"),
        ({"seed": "abc"}, "seed"),
        ({"modles": ["knn"]}, "modles"),
    ],
)
def test_pydantic_checks_become_one_line_task_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(TaskError) as info:
        Task(data="x.csv", **kwargs)
    msg = str(info.value)
    assert field in msg and "\n" not in msg
    assert isinstance(info.value, HyperpilotError) and not isinstance(info.value, ValueError)


def test_direction_needs_a_metric() -> None:
    with pytest.raises(TaskError, match="no metric yet"):
        Task(data="x.csv").direction  # noqa: B018
    assert Task(data="x.csv", metric="log_loss").direction == "minimize"
    assert Task(data="x.csv", metric="rmse").direction == "minimize"
    assert Task(data="x.csv", metric="roc_auc").direction == "maximize"


@pytest.mark.parametrize("task_type", ["binary", "multiclass", "regression"])
def test_resolved_fills_in(task_type: str) -> None:
    t = Task(data="data/churn.csv", models=["knn"]).resolved(task_type)  # type: ignore[arg-type]
    assert t.task_type == task_type
    assert t.metric == DEFAULT_METRIC[task_type]  # type: ignore[index]
    assert t.models == ["knn"]
    assert t.study_name is not None and t.study_name.startswith("churn-knn-")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", t.study_name)
    Task.model_validate(t.model_dump())  # the generated name passes the check


def test_resolved_keeps_what_the_user_gave() -> None:
    t = Task(data="sklearn:iris", task_type="multiclass", metric="f1", study_name="mine").resolved("binary")
    assert (t.task_type, t.metric, t.study_name) == ("multiclass", "f1", "mine")
    assert t.models  # a default model was filled in


def test_default_study_names_differ() -> None:
    t = Task(data="sklearn:breast_cancer", models=["random_forest", "knn"])
    a, b = t.default_study_name(), t.default_study_name()
    assert a != b
    assert a.startswith("breast_cancer-random_forest+knn-")


def test_task_json_round_trip() -> None:
    t = Task(data="sklearn:wine", models=["svm", "knn"], metric="f1", n_trials=7, cv_folds=3, sampler="random").resolved("multiclass")
    assert Task.model_validate_json(t.model_dump_json()) == t


def test_get_metric() -> None:
    m = get_metric("rmse")
    assert m.direction == "minimize" and m.sign == -1
    assert m.better(1.0, 2.0) and not m.better(2.0, 1.0)
    assert get_metric("accuracy").better(0.9, 0.8)
    assert get_metric("f1").scorer_for("multiclass") == "f1_macro"
    assert get_metric("f1").scorer_for("binary") == "f1"
    assert get_metric("roc_auc").scorer_for("multiclass") == "roc_auc_ovr"
    for name, default in DEFAULT_METRIC.items():
        assert name in get_metric(default).task_types
    with pytest.raises(TaskError, match="use one of rmse, mse, mae, r2"):
        get_metric("accuracy", "regression")
