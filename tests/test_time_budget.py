"""Time budgets: a timeout alone means no trial cap; the loop runs until the deadline, starts
no trial after it and stops one still running after its current fold (once a trial has
completed); a sandbox executor starts its workers ahead of the first trial (`warm`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import optuna
import pytest
from threadpoolctl import threadpool_limits

from hyperpilot import Assistant, Task, studies
from hyperpilot.cards import get_model_card
from hyperpilot.core.loop import StudyLoop, TrialHandle
from hyperpilot.core.proposer import Proposer, StudyContext
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Outcome, Suggestion, TrialRecord
from hyperpilot.errors import HyperpilotError, TaskError
from hyperpilot.sandbox import InProcessExecutor, Sandbox, SandboxExecutor
from hyperpilot.trainers.code import CUSTOM_CODE, code_id

KNN = get_model_card("knn")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


def test_a_timeout_alone_lifts_the_trial_cap() -> None:
    assert Task(data="x.csv").n_trials == 20  # neither: the default cap
    assert Task(data="x.csv", timeout=60).n_trials is None
    assert Task(data="x.csv", timeout=60, n_trials=5).n_trials == 5
    again = Task.model_validate_json(Task(data="x.csv", timeout=60).model_dump_json())
    assert (again.n_trials, again.timeout) == (None, 60)  # a stored task keeps "no cap"
    with pytest.raises(TaskError, match=r"^n_trials=None \(no trial cap\) needs a timeout"):
        Task(data="x.csv", n_trials=None)


def _ctx(n_trials: int | None, timeout: float | None) -> StudyContext:
    task = Task(data="t", metric="accuracy", models=["knn"], n_trials=n_trials, timeout=timeout, study_name="t").resolved("binary")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    return StudyContext(task, study, StudySpace([KNN]))


def _folds(n_folds: int, seconds: float):  # type: ignore[no-untyped-def]
    """An objective of `n_folds` folds of `seconds` each that obeys a stop after any fold
    but the last (as `CrossValidation`: after the last one nothing is left to save)."""
    def objective(handle: TrialHandle) -> Outcome:
        for step in range(n_folds):
            time.sleep(seconds)
            handle.report(0.5, step)
            if step < n_folds - 1 and handle.should_prune():
                return Outcome(None, 0.0, pruned=True, steps=handle.steps)
        return Outcome(0.5, 0.0, steps=handle.steps)
    return objective


def test_no_cap_runs_until_the_deadline_and_starts_nothing_after_it() -> None:
    ctx = _ctx(None, 1.0)
    start = time.perf_counter()
    started = time.time()
    StudyLoop(ctx, _folds(1, 0.02)).run(None, start + 1.0)
    took = time.perf_counter() - start
    trials = ctx.study.trials
    assert len(trials) > 20  # more than the default cap: the time budget alone decides
    assert took >= 1.0 - max(t.user_attrs["seconds"] for t in trials)  # it ran until a typical trial no longer fitted
    assert max(t.datetime_start.timestamp() for t in trials) < started + 1.0  # type: ignore[union-attr]  # none started after it
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_the_loop_keeps_the_reserve_free_and_starts_no_trial_that_would_run_into_it() -> None:
    ctx = _ctx(None, 1.0)
    start = time.perf_counter()
    started = time.time()
    StudyLoop(ctx, _folds(1, 0.1), reserve=lambda seconds: 3 * seconds).run(None, start + 1.0)  # ~0.3 s kept for the refit
    took = time.perf_counter() - start
    trials = ctx.study.trials
    typical = min(t.user_attrs["seconds"] for t in trials)  # the median the loop used is at least this
    assert len(trials) >= 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    last_start = max(t.datetime_start.timestamp() for t in trials) - started  # type: ignore[union-attr]
    assert last_start < 1.0 - 3 * typical - typical + 0.05  # no trial started that a typical one would carry into the reserve
    assert took < 1.0  # the reserve is left for the work after the loop


def test_a_trial_running_at_the_deadline_stops_after_its_fold() -> None:
    ctx = _ctx(None, 0.5)
    start = time.perf_counter()
    StudyLoop(ctx, _folds(20, 0.1)).run(None, start + 0.5)  # the first trial alone needs 2 s
    trials = ctx.study.trials
    # the first trial finishes past the deadline (no model otherwise); the loop starts no second one
    assert [t.state.name for t in trials] == ["COMPLETE"]

    ctx = _ctx(None, 0.5)
    fast, slow = _folds(4, 0.05), _folds(4, 0.3)
    loop = StudyLoop(ctx, lambda handle: fast(handle) if handle.number == 0 else slow(handle))
    start = time.perf_counter()
    loop.run(None, start + 0.6)  # trial 0 completes at ~0.2 s; trial 1, longer than it, is stopped at the deadline
    states = [t.state.name for t in ctx.study.trials]
    assert states == ["COMPLETE", "PRUNED"]
    stopped = ctx.study.trials[1]
    assert stopped.user_attrs["stopped"] == "deadline" and 1 <= len(stopped.user_attrs["fold_values"]) < 4


def test_a_study_without_a_completed_trial_gets_one_past_the_deadline() -> None:
    ctx = _ctx(None, 1.0)
    StudyLoop(ctx, _folds(2, 0.0)).run(None, time.perf_counter() - 1.0)  # the budget went on loading
    assert [t.state.name for t in ctx.study.trials] == ["COMPLETE"]
    StudyLoop(ctx, _folds(2, 0.0)).run(None, time.perf_counter() - 1.0)  # resumed: it has one, so none starts
    assert len(ctx.study.trials) == 1


def test_a_loop_needs_a_cap_or_a_deadline() -> None:
    with pytest.raises(HyperpilotError, match="a trial cap, a deadline, or both"):
        StudyLoop(_ctx(None, 1.0), _folds(1, 0.0)).run(None, None)


def test_solve_with_a_time_budget_alone() -> None:
    task = Task(data="sklearn:iris", models=["logistic_regression"], cv_folds=2, timeout=4)
    assert task.n_trials is None
    start = time.perf_counter()
    result = Assistant(llm="none", memory=False, executor=InProcessExecutor()).solve(task)
    took = time.perf_counter() - start
    assert result.n_trials >= 1 and result.task.n_trials is None  # how many fit in 4 s depends on the machine's load
    assert took < 4 + 10  # the budget, a fold of overrun, the refit and the report
    stored = studies.stored_task(studies.load_study(result.study_name))
    assert (stored.n_trials, stored.timeout) == (None, 4)  # resume keeps the time budget


def test_warm_starts_the_worker_before_any_job() -> None:
    sandbox = Sandbox()
    executor = SandboxExecutor(sandbox=sandbox)
    try:
        start = time.perf_counter()
        executor.warm()
        assert time.perf_counter() - start < 1.0  # returns at once: the start-up runs in the background
        deadline = time.monotonic() + 240
        while sandbox._worker is None and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.1)
        assert sandbox._worker is not None, "warm() did not start the worker"  # noqa: SLF001
        pid = sandbox._worker.proc.pid  # noqa: SLF001
        executor.warm()  # once per executor
        res = sandbox.run("hyperpilot.sandbox.executor:noop", {})
        assert res.ok and sandbox._worker.proc.pid == pid  # noqa: SLF001 - the job ran in the warmed worker
    finally:
        executor.close()


@pytest.mark.parametrize(("timeout", "rows", "columns", "expected"), [
    (None, 1_000_000, 100, "cv"),  # no time budget: always CV (FLAML's rule)
    (15, 455, 30, "cv"),  # 15 s, breast_cancer's training rows: 15,167 < 41,667
    (15, 24_000, 5, "holdout"),  # 15 s, an HPOBench table: 133,333 ≥ 41,667
    (3600, 99_999, 10, "cv"),  # an hour: 1.1e6 < 1e7
    (3600, 100_000, 1, "holdout"),  # 100,000 rows or more: the holdout whatever the time
])
def test_auto_validation_follows_flamls_rule(timeout: float | None, rows: int, columns: int, expected: str) -> None:
    task = Task(data="x.csv", timeout=timeout)
    assert task.validation == "auto"
    assert task.decided(rows, columns).validation == expected
    for chosen in ("cv", "holdout"):  # what the user chose is kept
        assert task.updated(validation=chosen).decided(rows, columns).validation == chosen


def test_a_validation_name_is_checked() -> None:
    with pytest.raises(TaskError, match="validation"):
        Task(data="x.csv", validation="bootstrap")


def test_a_holdout_scores_each_trial_on_the_first_fold_only_and_resume_keeps_it() -> None:
    task = Task(data="sklearn:breast_cancer", models=["logistic_regression"], n_trials=2, cv_folds=4, validation="holdout")
    assistant = Assistant(llm="none", memory=False, executor=InProcessExecutor())
    result = assistant.solve(task)
    assert result.task.validation == "holdout"
    study = studies.load_study(result.study_name)
    assert all(len(t.intermediate_values) == 1 for t in study.trials)  # one validation split a trial, not 4 folds
    report = result.report_path.read_text()
    assert "holdout (1/4 of the training rows)" in report and "one split, so no std" in report
    again = assistant.resume(result.study_name, n_trials=3)
    assert again.task.validation == "holdout" and all(len(t.intermediate_values) == 1 for t in studies.load_study(result.study_name).trials)


def test_a_short_time_budget_on_a_large_table_decides_holdout_for_the_study() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(3000, 20)), columns=[f"f{i}" for i in range(20)])
    frame["y"] = frame["f0"] + rng.normal(size=3000)
    task = Task(data=frame, target="y", models=["ridge"], timeout=2, n_trials=2)  # 2,400 × 20 / 0.9 ≥ 1e7 · 2 / 3600
    result = Assistant(llm="none", memory=False, executor=InProcessExecutor()).solve(task)
    assert result.task.validation == "holdout"
    assert studies.stored_task(studies.load_study(result.study_name)).validation == "holdout"


@pytest.mark.parametrize(("validation", "expected"), [("cv", 2.5), ("holdout", 12.5)])
def test_the_refit_reserve_scales_a_trials_seconds_to_one_fit_on_every_row(validation: str, expected: float) -> None:
    import numpy as np
    import pandas as pd

    from hyperpilot.core.cv import CrossValidation

    X = pd.DataFrame({"a": np.arange(100.0)})
    y = pd.Series(np.arange(100.0))
    task = Task(data="t", models=["ridge"], cv_folds=5, validation=validation).resolved("regression")
    cv = CrossValidation(InProcessExecutor(), X, y, task)
    # 5-fold CV: a 10 s trial is 5 fits on 80 rows, the refit 1 fit on 100; the holdout: 1 fit on 80
    assert cv.refit_seconds(10.0) == pytest.approx(expected)


SLOW = '''import time

from sklearn.dummy import DummyClassifier


def build(config):
    time.sleep(600)
    return DummyClassifier()
'''


class SlowProgram(Proposer):
    """After the first completed trial, one `custom_code` trial whose program sleeps 10 minutes."""

    name = "slow"

    def __init__(self) -> None:
        self.done = False

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        if self.done or not ctx.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            return None
        self.done = True
        return Suggestion(CUSTOM_CODE, get_model_card(CUSTOM_CODE).default_config(), "slow",
                          attrs={"code_id": code_id(SLOW), "code": SLOW})


def test_the_sandbox_stops_a_trial_still_running_at_the_end_of_the_time_budget() -> None:
    """A single-fold trial has no fold to stop after: the sandbox kills it at `Job.stop_at`;
    the study keeps its model and ends about when the budget does, not 10 minutes later."""
    task = Task(data="sklearn:iris", models=["logistic_regression", CUSTOM_CODE], cv_folds=2, validation="holdout", timeout=20)
    executor = SandboxExecutor(trial_timeout=300)
    records: list[TrialRecord] = []
    start = time.perf_counter()
    try:
        result = Assistant(llm="none", memory=False, executor=executor, proposers=[SlowProgram()],
                           on_trial=records.append).solve(task)
    finally:
        executor.close()
    took = time.perf_counter() - start
    study = studies.load_study(result.study_name)
    slow = [t for t in study.trials if t.user_attrs.get("source") == "slow"]
    assert len(slow) == 1, "the slow program must have started for this test (a loaded machine may delay it)"
    assert slow[0].state == optuna.trial.TrialState.PRUNED and slow[0].user_attrs["stopped"] == "deadline"
    assert [r.value_text() for r in records if r.source == "slow"] == ["time up"]  # what the progress line shows
    assert result.best_model in task.models and took < 20 + 60  # the budget, the refit and the report


def test_a_job_whose_stop_at_has_passed_is_not_started() -> None:
    from hyperpilot.core.cv import CrossValidation
    from hyperpilot.core.loop import FixedTrial
    from hyperpilot.data import load_dataset

    data = load_dataset("sklearn:iris", None)
    task = Task(data="sklearn:iris", models=["knn"], cv_folds=2).resolved("multiclass")
    executor = SandboxExecutor()
    try:
        cv = CrossValidation(executor, data.X, data.y, task)
        for model, code in (("knn", None), (CUSTOM_CODE, SLOW)):  # a trusted trainer; a program (one process a fold)
            job = cv.job(model, get_model_card(model).default_config(), 0, code, stop_at=time.perf_counter() - 1)
            res = executor.run(job, lambda step, response: False)
            assert res.stopped and not res.ok and res.error == "stopped at the end of the time budget"
        handle = FixedTrial("knn", get_model_card("knn").default_config())
        assert cv(handle).value is not None  # no stop_at: it runs
    finally:
        executor.close()


def test_a_trial_stops_where_its_own_refit_would_no_longer_fit() -> None:
    """The best trial so far is quick (a small reserve), a slow one runs: were it to complete
    and become the best, its own refit (2 × its seconds) would overrun, so it stops first."""
    ctx = _ctx(None, 1.0)
    fast, slow = _folds(1, 0.05), _folds(4, 0.2)
    start = time.perf_counter()
    StudyLoop(ctx, lambda handle: fast(handle) if handle.number == 0 else slow(handle),
              reserve=lambda seconds: 2 * seconds).run(None, start + 1.0)
    trials = ctx.study.trials
    assert trials[0].state.name == "COMPLETE" and len(trials) >= 2
    for t in trials[1:]:  # trial 1 started at ~0.05 s: its own refit fits only if it ends by ~0.37 s (t + 2 (t - 0.05) ≤ 1)
        assert t.state.name == "PRUNED" and t.user_attrs["stopped"] == "deadline" and len(t.user_attrs["fold_values"]) < 4


def test_a_study_whose_trials_all_fail_alike_stops_after_five() -> None:
    def broken(handle: TrialHandle) -> Outcome:
        return Outcome(None, 0.0, "SandboxError: the sandbox worker did not start")

    ctx = _ctx(None, 60.0)
    start = time.perf_counter()
    StudyLoop(ctx, broken).run(None, start + 60.0)  # no cap: without the rule it would fail for a minute
    assert [t.state.name for t in ctx.study.trials] == ["FAIL"] * 5 and time.perf_counter() - start < 60

    errors = iter(range(1000))
    ctx = _ctx(8, None)
    StudyLoop(ctx, lambda handle: Outcome(None, 0.0, f"error {next(errors)}")).run(8)
    assert len(ctx.study.trials) == 8  # different errors: the budget decides

    ctx = _ctx(8, None)
    StudyLoop(ctx, lambda handle: Outcome(0.5, 0.0) if handle.number == 0 else broken(handle)).run(8)
    assert len(ctx.study.trials) == 8  # a study that has a completed trial goes on


def test_a_solve_whose_every_trial_times_out_ends_with_one_line_early() -> None:
    from hyperpilot.errors import StudyError

    task = Task(data="sklearn:iris", models=["knn"], cv_folds=2, timeout=120)
    executor = SandboxExecutor(trial_timeout=0.001)
    start = time.perf_counter()
    try:
        with pytest.raises(StudyError, match=r"all 5 trials of .* failed; first error: timed out after 0.001 s"):
            Assistant(llm="none", memory=False, executor=executor).solve(task)
    finally:
        executor.close()
    assert time.perf_counter() - start < 120  # not the whole budget
