"""A full, short solve per task type with real scikit-learn and a real Optuna SQLite study,
and what happens when trials fail."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import optuna
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from hyperpilot import Assistant, Task, studies
from hyperpilot.cards import get_model_card
from hyperpilot.core.cv import CrossValidation
from hyperpilot.core.executor import Job, JobResult, ReportFn
from hyperpilot.core.types import TrialRecord
from hyperpilot.data import load_dataset
from hyperpilot.errors import StudyError
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.trainers import Trainer, get_trainer, register
from hyperpilot.trainers import base as trainer_base


@pytest.fixture(autouse=True)
def _pure_bo_one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The foundation loop alone: no LLM planner, one BLAS/OpenMP thread."""
    monkeypatch.setenv("HYPERPILOT_LLM", "none")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    """Binary target with string labels, mixed columns, missing values."""
    rng = np.random.default_rng(1)
    n = 160
    df = pd.DataFrame({
        "tenure": rng.integers(1, 72, n).astype(float),
        "charges": rng.normal(70, 20, n).round(2),
        "contract": rng.choice(["monthly", "yearly", "two-year"], n),
        "paperless": rng.choice(["yes", "no"], n),
    })
    logit = -0.05 * df.tenure + 0.03 * (df.charges - 70) + 1.5 * (df.contract == "monthly")
    df["churn"] = np.where(logit + rng.normal(0, 0.7, n) > 0, "left", "stayed")
    df.loc[::9, "charges"] = np.nan
    df.loc[::13, "contract"] = None
    path = tmp_path / "churn.csv"
    df.to_csv(path, index=False)
    return path


def _check_result(result: Any, task: Task, n_trials: int, labels: set[Any] | None) -> None:
    assert result.n_trials == n_trials and result.n_failed == 0
    assert math.isfinite(result.test_score) and math.isfinite(result.cv_score)
    assert result.best_model in task.models
    assert set(result.best_config) == set(get_model_card(result.best_model).space.names)
    folder = result.report_path.parent
    assert folder == studies.home() / "studies" / result.study_name
    for name in ("report.md", "report.json", "history.png", "model.joblib"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert result.model_path == folder / "model.joblib"
    assert (folder / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = json.loads((folder / "report.json").read_text())
    assert report["study"] == result.study_name
    assert report["n_trials"] == n_trials and len(report["trials"]) == n_trials
    assert report["best"]["model"] == result.best_model and report["best"]["config"] == result.best_config
    assert report["test_score"] == pytest.approx(result.test_score)
    md = (folder / "report.md").read_text()
    assert f"Best model: **{result.best_model}**" in md and "![history](history.png)" in md
    assert md.count("\n| ") >= n_trials + 2  # one table row per trial

    # the saved model predicts the original labels on raw features
    data = load_dataset(task.data, task.target)
    model = joblib.load(result.model_path)
    pred = model.predict(data.X.head(25))
    assert len(pred) == 25
    if labels is not None:
        assert set(pred) <= labels
    else:
        assert np.all(np.isfinite(pred.astype(float)))

    # the Optuna study holds every trial with its provenance
    study = studies.load_study(result.study_name)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n_trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [t.number for t in trials] == list(range(n_trials))
    assert trials[0].user_attrs["source"] == "default"
    assert all("source" not in t.user_attrs for t in trials[len(task.models):])  # no source: BO's
    table = result.trials  # model and config are derived from the params
    assert list(table.number) == list(range(n_trials))
    assert table.config[0] == get_model_card(task.models[0]).default_config() and table.model[0] == task.models[0]
    assert list(table.source) == ["default"] * len(task.models) + ["bo"] * (n_trials - len(task.models))
    for t, row in zip(trials, table.itertuples(), strict=True):
        assert t.user_attrs["seconds"] > 0 and row.seconds == t.user_attrs["seconds"]
        assert row.model == t.params["model"] and row.state == "COMPLETE" and row.value == t.value
        assert row.config == {k.split(".", 1)[1]: v for k, v in t.params.items() if k != "model"}
        assert set(row.config) == set(get_model_card(row.model).space.names)
        assert len(t.user_attrs["fold_values"]) == task.cv_folds
        assert t.value == pytest.approx(np.mean(t.user_attrs["fold_values"]))
    best = max(trials, key=lambda t: t.value) if task.direction == "maximize" else min(trials, key=lambda t: t.value)
    assert result.cv_score == pytest.approx(best.value)
    assert study.user_attrs["task"]["metric"] == task.metric
    assert result.best_model in result.summary()


def test_solve_binary_csv_with_string_labels(churn_csv: Path) -> None:
    records: list[TrialRecord] = []
    task = Task(data=str(churn_csv), target="churn", models=["logistic_regression"], metric="roc_auc",
                n_trials=4, cv_folds=2, study_name="churn-lr")
    result = Assistant(on_trial=records.append).solve(task)
    assert result.task.task_type == "binary" and result.task.metric == "roc_auc"
    assert 0.5 < result.cv_score <= 1 and 0 <= result.test_score <= 1
    _check_result(result, result.task, 4, {"left", "stayed"})
    assert [r.number for r in records] == [0, 1, 2, 3]
    assert [r.n_done for r in records] == [1, 2, 3, 4] and {r.n_total for r in records} == {4}
    assert records[0].source == "default" and records[0].error == ""
    assert [r.source for r in records] == list(result.trials.source) and {r.state for r in records} == {"COMPLETE"}
    assert [(r.model, r.config, r.value) for r in records] == list(zip(result.trials.model, result.trials.config,
                                                                       result.trials.value, strict=True))
    assert records[-1].best_value == pytest.approx(result.cv_score)


def test_solve_multiclass_builtin() -> None:
    task = Task(data="sklearn:iris", models=["knn"], n_trials=4, cv_folds=2, seed=3)
    result = Assistant().solve(task)
    assert result.task.task_type == "multiclass" and result.task.metric == "accuracy"
    assert result.cv_score > 0.8 and result.test_score > 0.8
    assert result.study_name.startswith("iris-knn-")
    _check_result(result, result.task, 4, {0, 1, 2})
    assert result.dataset_card.n_rows == 120  # the card profiles the training split only


def test_solve_regression_builtin() -> None:
    task = Task(data="sklearn:diabetes", models=["ridge"], metric="mae", n_trials=4, cv_folds=2)
    result = Assistant().solve(task)
    assert result.task.task_type == "regression" and result.task.direction == "minimize"
    assert 20 < result.test_score < 100  # MAE in the target's units, positive
    _check_result(result, result.task, 4, None)


def test_solve_compares_models() -> None:
    task = Task(data="sklearn:wine", models=["knn", "decision_tree"], n_trials=5, cv_folds=2, sampler="random")
    result = Assistant().solve(task)
    study = studies.load_study(result.study_name)
    trials = study.get_trials(deepcopy=False)
    assert [(t.user_attrs["source"], t.params["model"]) for t in trials[:2]] == [("default", "knn"), ("default", "decision_tree")]
    assert all("source" not in t.user_attrs for t in trials[2:]) and set(result.trials.source[2:]) == {"bo"}
    for t in trials:  # each trial carries only its own model's parameters
        assert all(k == "model" or k.startswith(t.params["model"] + ".") for k in t.params)
    assert len(trials) == result.n_trials == 5


def test_same_seed_same_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeds are explicit: two runs with the same seed (each in a fresh home, so that
    nothing of the first can inform the second) try the same configs and get the same values."""
    def run(home: str) -> list[tuple[dict, float]]:
        monkeypatch.setenv("HYPERPILOT_HOME", str(tmp_path / home))
        result = Assistant().solve(Task(data="sklearn:iris", models=["decision_tree"], n_trials=4, cv_folds=2,
                                        seed=11, study_name="seeded"))
        return [(t.params, t.value) for t in studies.load_study(result.study_name).trials]

    first = run("a")
    assert first == run("b")
    assert len({str(p) for p, _ in first}) == 4


def test_a_study_name_is_tied_to_its_task() -> None:
    Assistant().solve(Task(data="sklearn:iris", models=["knn"], n_trials=2, cv_folds=2, study_name="tied"))
    with pytest.raises(StudyError, match="study 'tied' was made for data='sklearn:iris'"):
        Assistant().solve(Task(data="sklearn:wine", models=["knn"], n_trials=3, cv_folds=2, study_name="tied"))
    with pytest.raises(StudyError, match="models"):
        Assistant().solve(Task(data="sklearn:iris", models=["decision_tree"], n_trials=3, cv_folds=2, study_name="tied"))


# --- failing trials ---------------------------------------------------------------------------


class FlakyTrainer(Trainer):
    """The knn trainer under another name, which fails for large neighbourhoods."""

    def __init__(self, fail_above: int) -> None:
        super().__init__(get_model_card("knn").model_copy(update={"name": "flaky_knn", "title": "Flaky kNN"}))
        self.inner = get_trainer("knn")
        self.fail_above = fail_above

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Any:
        if config["n_neighbors"] > self.fail_above:
            raise ValueError(f"flaky: n_neighbors={config['n_neighbors']} is too many")
        return self.inner.fit(config, X, y, task)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainers registered by a test vanish after it."""
    monkeypatch.setattr(trainer_base, "_REGISTRY", dict(trainer_base._REGISTRY))


@pytest.mark.usefixtures("registry")
def test_failing_trials_are_recorded_and_the_study_goes_on() -> None:
    register(FlakyTrainer(fail_above=6))  # the default (5) works, roughly 3/4 of the space fails
    task = Task(data="sklearn:iris", models=["flaky_knn"], n_trials=6, cv_folds=2, sampler="random", seed=2)
    result = Assistant().solve(task)
    table = result.trials
    failed = table[table.state == "FAIL"]
    assert len(failed) >= 1 and result.n_failed == len(failed)
    assert (table.state == "COMPLETE").any()
    assert result.n_trials == len(table) == 6  # failed trials count against the budget
    for row in failed.itertuples():
        assert row.config["n_neighbors"] > 6
        assert row.error.startswith("ValueError: flaky: n_neighbors=")
        assert "(at fit:" in row.error
        assert row.value is None or math.isnan(row.value)
    assert result.best_config["n_neighbors"] <= 6
    study = studies.load_study(result.study_name)
    for t in study.trials:
        assert "seconds" in t.user_attrs and t.params["model"] == "flaky_knn"
        if t.state == optuna.trial.TrialState.FAIL:
            assert t.user_attrs["error"].startswith("ValueError") and t.value is None
    lines = (result.report_path).read_text().splitlines()
    for row in failed.itertuples():  # the trial table's row: state and error in their own columns
        assert any(line.startswith(f"| {row.number} | FAIL |") and line.endswith(f"| {row.error[:80]} |") for line in lines)


@pytest.mark.usefixtures("registry")
def test_all_trials_failing_is_a_study_error_naming_the_first() -> None:
    register(FlakyTrainer(fail_above=0))
    task = Task(data="sklearn:iris", models=["flaky_knn"], n_trials=3, cv_folds=2, study_name="doomed")
    with pytest.raises(StudyError) as info:
        Assistant().solve(task)
    msg = str(info.value)
    assert "all 3 trials of 'doomed' failed" in msg
    assert "first error: ValueError: flaky: n_neighbors=5 is too many" in msg  # trial 0 is the default
    assert "\n" not in msg
    assert len(studies.load_study("doomed").trials) == 3


class OddExecutor:
    """An Executor that refuses every second job (as a remote worker might)."""

    workers = 1

    def __init__(self) -> None:
        self.calls = 0
        self.inner = InProcessExecutor()

    def run(self, job: Job, on_report: ReportFn) -> JobResult:
        self.calls += 1
        if self.calls % 2 == 0:
            return JobResult(False, 0.01, f"WorkerLost: call {self.calls}")
        return self.inner.run(job, on_report)

    def close(self) -> None:
        self.inner.close()


def test_executor_failures_are_recorded() -> None:
    executor = OddExecutor()
    result = Assistant(executor=executor).solve(
        Task(data="sklearn:iris", models=["decision_tree"], n_trials=4, cv_folds=2))
    assert executor.calls == 5  # 4 trials, then the refit of the best config through the same executor
    assert list(result.trials.state) == ["COMPLETE", "FAIL", "COMPLETE", "FAIL"]
    assert list(result.trials.error)[1] == "WorkerLost: call 2"
    assert result.n_failed == 2 and result.n_trials == 4


def test_in_process_executor_never_raises() -> None:
    data = load_dataset("sklearn:iris")
    task = Task(data="sklearn:iris", cv_folds=2).resolved("multiclass")
    executor = InProcessExecutor()
    reports: list[tuple[int, dict[str, Any]]] = []

    def on_report(step: int, response: dict[str, Any]) -> bool:
        reports.append((step, response))
        return False

    cv = CrossValidation(executor, data.X, data.y, task)
    ok = executor.run(cv.job("knn", {"n_neighbors": 3, "p": 2}, seed=0), on_report)
    assert ok.ok and ok.error == "" and ok.seconds > 0 and not ok.stopped
    assert [step for step, _ in reports] == [0, 1] and all(len(r["predict"]) == 75 for _, r in reports)
    small = CrossValidation(executor, data.X.head(40), data.y.head(40), task)
    bad = executor.run(small.job("knn", {"n_neighbors": 500, "p": 2}, seed=0), on_report)
    assert not bad.ok and not bad.stopped and bad.error.startswith("ValueError")
    unknown = executor.run(cv.job("nope", {}, seed=0), on_report)
    assert not unknown.ok and "unknown model 'nope'" in unknown.error
    stopped = executor.run(cv.job("knn", {"n_neighbors": 3, "p": 2}, seed=0), lambda step, response: True)
    assert not stopped.ok and stopped.stopped  # the coordinator said stop after the first fold


def test_a_timeout_before_any_trial_finished() -> None:
    """A budget spent before the first trial (loading the data, starting the planner) still
    gives a model: a study without a completed trial starts one, and no more (issue 15)."""
    result = Assistant().solve(Task(data="sklearn:iris", models=["knn"], n_trials=3, cv_folds=2, timeout=1e-6,
                                    study_name="hurried"))
    assert result.n_trials == 1 and studies.n_finished(studies.load_study("hurried")) == 1


def test_a_timeout_stops_the_study_early() -> None:
    result = Assistant().solve(Task(data="sklearn:iris", models=["knn"], n_trials=500, cv_folds=2, timeout=4))
    assert 1 <= result.n_trials < 500
    assert math.isfinite(result.test_score)


def test_an_executor_that_raises_fails_the_trial_not_the_study() -> None:
    """An executor breaking its never-raise contract costs one trial, not the study."""
    class Breaking(InProcessExecutor):
        calls = 0

        def run(self, job: Job, on_report: ReportFn) -> JobResult:
            Breaking.calls += 1
            if Breaking.calls == 2:
                raise OSError("worker pipe closed")
            return super().run(job, on_report)

    result = Assistant(executor=Breaking(), llm="none", memory=None).solve(
        Task(data="sklearn:iris", models=["knn"], n_trials=3, cv_folds=2)
    )
    failed = result.trials[result.trials.state == "FAIL"]
    assert len(failed) == 1 and failed.error.iloc[0] == "OSError: worker pipe closed"
    assert result.n_trials == 3
