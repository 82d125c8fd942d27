"""The core loop: arbitration between queued trials, proposers and BO; the report channel
and pruning; parallel workers; derived seeds; trusted scoring; pluggable samplers."""

from __future__ import annotations

import threading
import time

import numpy as np
import optuna
import pytest

from hyperpilot import Assistant, Task
from hyperpilot.cards import get_model_card
from hyperpilot.core.loop import StudyLoop, TrialHandle
from hyperpilot.core.proposer import CardDefaults, Proposer, StudyContext
from hyperpilot.core.scoring import score
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Outcome, Suggestion, trial_seed
from hyperpilot.errors import TaskError, TrialError
from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor

KNN = get_model_card("knn")


def _ctx(n: int = 8, sampler: optuna.samplers.BaseSampler | None = None) -> StudyContext:
    task = Task(data="t", metric="accuracy", models=["knn"], n_trials=n, study_name="t").resolved("binary")
    study = optuna.create_study(direction="maximize", sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    return StudyContext(task, study, StudySpace([KNN]))


def _value(handle: TrialHandle) -> Outcome:
    return Outcome(1.0 / (1 + handle.config["n_neighbors"]), 0.0)


class Fixed(Proposer):
    def __init__(self, name: str, configs: list[dict], warm: list[dict] | None = None) -> None:
        self.name, self.configs, self.warm = name, list(configs), warm or []

    def start(self, ctx: StudyContext) -> list[Suggestion]:
        return [Suggestion("knn", c, self.name) for c in self.warm]

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        return Suggestion("knn", self.configs.pop(0), self.name) if self.configs else None


def _sources(ctx: StudyContext) -> list[str]:
    return [t.user_attrs.get("source", "bo") for t in ctx.study.trials]


def test_arbitration_queued_first_then_proposers_in_order_then_bo() -> None:
    cfg = KNN.default_config()
    first = Fixed("first", [{**cfg, "n_neighbors": 3}], warm=[{**cfg, "n_neighbors": 7}])
    second = Fixed("second", [{**cfg, "n_neighbors": 4}, {**cfg, "n_neighbors": 9}])
    ctx = _ctx(6)
    StudyLoop(ctx, _value, [CardDefaults(), first, second]).run(6)
    # defaults, then the start batch, then first's suggestion, then second's (first is spent), then BO
    assert _sources(ctx) == ["default", "first", "first", "second", "second", "bo"]


def test_invalid_and_duplicate_suggestions_fall_back_to_bo_and_are_counted() -> None:
    cfg = KNN.default_config()
    bad = Fixed("bad", [{**cfg, "bogus": 1}, dict(cfg)])  # an unknown parameter; then the default again
    ctx = _ctx(3)
    loop = StudyLoop(ctx, _value, [CardDefaults(), bad])
    loop.run(3)
    assert _sources(ctx) == ["default", "bo", "bo"]
    assert loop.rejected == {"bad": 2}


def test_a_pruned_trial_is_pruned_not_failed() -> None:
    ctx = _ctx(8)
    ctx.study.pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)

    def folds(handle: TrialHandle) -> Outcome:
        base = 1.0 / (1 + handle.config["n_neighbors"])
        for step in range(4):
            handle.report(base, step)
            if handle.should_prune():
                return Outcome(None, 0.0, pruned=True, steps=handle.steps)
        return Outcome(base, 0.0)

    StudyLoop(ctx, folds, [CardDefaults()]).run(8)
    states = {t.state for t in ctx.study.trials}
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.FAIL not in states
    pruned = [t for t in ctx.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(t.user_attrs["fold_values"] for t in pruned)


def test_pruning_through_the_sandbox_report_channel(tmp_path, monkeypatch) -> None:
    """Folds report through the sandboxed trial's report files; the coordinator's pruner stops it."""
    monkeypatch.setenv("HYPERPILOT_HOME", str(tmp_path))
    task = Task(data="sklearn:breast_cancer", models=["knn"], metric="accuracy", n_trials=10, cv_folds=5, seed=1)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    result = Assistant(llm="none", memory=False, executor=SandboxExecutor(), pruner=pruner, sampler="random").solve(task)
    pruned = result.trials[result.trials.state == "PRUNED"]
    assert len(pruned) >= 1 and result.n_failed == 0
    assert result.n_pruned == len(pruned)


def test_two_workers_run_in_parallel_and_skip_running_configs() -> None:
    cfg = KNN.default_config()
    same = Fixed("same", [dict(cfg, n_neighbors=3)] * 3)  # the same config while it is still running
    running, peak = [0], [0]
    lock, both = threading.Lock(), threading.Event()

    def slow(handle: TrialHandle) -> Outcome:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == 2:
                both.set()
        both.wait(timeout=10)  # a second trial starts while this one runs (however slow the machine)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return _value(handle)

    ctx = _ctx(5)
    loop = StudyLoop(ctx, slow, [CardDefaults(), same], workers=2)
    loop.run(5)
    assert peak[0] == 2
    assert len(ctx.study.trials) == 5
    assert _sources(ctx).count("same") == 1 and loop.rejected["same"] == 2  # a running config is not run twice


def test_two_workers_give_the_same_results_as_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HYPERPILOT_HOME", str(tmp_path))
    runs = []
    for workers in (1, 2):
        task = Task(data="sklearn:wine", models=["decision_tree"], n_trials=6, cv_folds=3, seed=4, study_name=f"w{workers}")
        result = Assistant(llm="none", memory=False, workers=workers, sampler="random",
                           executor=SandboxExecutor(workers=workers)).solve(task)
        runs.append([(r.number, json_key(r.config), r.value) for r in result.trials.sort_values("number").itertuples()])
    assert runs[0] == runs[1]


def json_key(config: dict) -> str:
    import json

    return json.dumps(config, sort_keys=True)


def test_trial_seeds_are_derived_from_the_task_seed_and_the_trial_number() -> None:
    seen: dict[int, int] = {}

    def record(handle: TrialHandle) -> Outcome:
        seen[handle.number] = handle.seed
        return _value(handle)

    StudyLoop(_ctx(4), record, [CardDefaults()], workers=2).run(4)
    assert seen == {n: trial_seed(0, n) for n in range(4)}
    assert len(set(seen.values())) == 4 and trial_seed(1, 0) != trial_seed(0, 0)


@pytest.mark.parametrize("response, error", [
    ({"predict": np.array([0, 1, 42])}, "class codes"),
    ({"proba": np.array([[42.0, 0.0], [0.5, 0.5], [0.5, 0.5]])}, "outside"),
    ({"predict": np.array([0, 1])}, "2 predict rows for 3"),
    ({"predict": np.array([0.0, np.nan, 1.0])}, "NaN"),
])
def test_scoring_rejects_predictions_of_the_wrong_shape_or_range(response, error) -> None:
    metric = "log_loss" if "proba" in response else "accuracy"
    with pytest.raises(TrialError, match=error):
        score(metric, "binary", np.array([0, 1, 1]), response, n_classes=2)


def test_scoring_matches_scikit_learn() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.array([0, 1, 1, 0, 1])
    p = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    assert score("log_loss", "binary", y, {"proba": p}, 2) == log_loss(y, p)
    assert score("roc_auc", "binary", y, {"proba": p}, 2) == roc_auc_score(y, p[:, 1])


def test_any_optuna_sampler_plugs_in(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HYPERPILOT_HOME", str(tmp_path))
    sampler = optuna.samplers.QMCSampler(seed=0, warn_independent_sampling=False)
    task = Task(data="sklearn:iris", models=["knn"], n_trials=4, cv_folds=3)
    result = Assistant(llm="none", memory=False, executor=InProcessExecutor(), sampler=sampler).solve(task)
    assert result.n_trials == 4
    with pytest.raises(TaskError, match="unknown sampler 'bogus'"):
        Task(data="sklearn:iris", sampler="bogus")


def test_large_seeds_work_with_the_llm_picker(tmp_path, monkeypatch) -> None:
    """Seeds derived from a large task seed (the picker's BO candidates) stay in numpy's range."""
    from hyperpilot.agent.llm import ScriptedLLM

    monkeypatch.setenv("HYPERPILOT_HOME", str(tmp_path))
    task = Task(data="sklearn:iris", models=["knn"], n_trials=5, cv_folds=3, seed=123_456)
    result = Assistant(llm=ScriptedLLM(), llm_rate=1.0, memory=False, executor=InProcessExecutor()).solve(task)
    assert result.n_trials == 5 and (result.trials.source == "llm").any()


def test_a_retry_that_died_too_does_not_count_against_the_budget() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from hyperpilot.core.loop import count_finished, retried

    study = optuna.create_study()
    dist = {"x": FloatDistribution(0, 1)}
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.5}, distributions=dist))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.5}, distributions=dist,
                                 system_attrs={"failed_trial": 0, "retry_history": [0]}))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=1.0, params={"x": 0.5}, distributions=dist,
                                 system_attrs={"failed_trial": 0, "retry_history": [0, 1]}))
    trials = study.get_trials(deepcopy=False)
    assert retried(trials) == {0: 1, 1: 2}
    assert count_finished(trials) == 1
