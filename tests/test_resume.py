"""Resuming a study: after the process running it was killed (a real SIGKILL of a child
process on the same SQLite study), and after a deliberately abandoned trial in-process.

Crash recovery relies on Optuna's heartbeats: a running trial's heartbeat is recorded every
`$HYPERPILOT_HEARTBEAT` seconds (1 s here); one silent for three times that is failed when
the study is next opened and queued again (`RetryHeartbeatStaleTrialCallback`), its retry
marked with the system attribute `failed_trial`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from hyperpilot import Assistant, Task, studies
from hyperpilot.cards import get_model_card
from hyperpilot.core.space import StudySpace
from hyperpilot.errors import StudyError

# a dead trial is stale after 3 heartbeats (3 s); SQLite keeps heartbeat times in whole
# seconds, so wait a little over 4 s before resuming
STALE_AFTER = 4.5

CHILD = """
import sys
from threadpoolctl import threadpool_limits
threadpool_limits(1)
from hyperpilot import Assistant, Task
Assistant().solve(Task(data="sklearn:digits", models=["svm"], n_trials=40, cv_folds=3, study_name=sys.argv[1]))
"""


@pytest.fixture(autouse=True)
def _pure_bo_one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HYPERPILOT_LLM", "none")
    monkeypatch.setenv("HYPERPILOT_HEARTBEAT", "1")  # (the child process inherits it)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threadpool_limits(1):
        yield


def _snapshot(name: str) -> dict[int, optuna.trial.FrozenTrial]:
    return {t.number: t for t in studies.load_study(name).get_trials(deepcopy=True)}


def _trials(name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=studies.storage()).get_trials(deepcopy=False)
    except KeyError:  # the child has not created the study yet
        return []


def _mid_trial(trials: list[optuna.trial.FrozenTrial], min_complete: int) -> bool:
    """At least `min_complete` trials are complete and the last one is being evaluated: it
    has reported a fold, so its config is recorded and its heartbeat is running."""
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return n_complete >= min_complete and trials[-1].state == TrialState.RUNNING and bool(trials[-1].intermediate_values)


def _kill_mid_study(name: str, tmp_path: Path, min_complete: int = 3, limit: float = 180.0) -> None:
    """Run a 40-trial solve in a child process and SIGKILL it while a trial is running,
    once at least `min_complete` trials are complete."""
    log = (tmp_path / "child.log").open("w")
    child = subprocess.Popen([sys.executable, "-c", CHILD, name], env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + limit
    try:
        while True:
            assert child.poll() is None, f"the child exited early: {(tmp_path / 'child.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the child never completed enough trials"
            trials = _trials(name)
            if _mid_trial(trials, min_complete):
                # the trial may finish between this read and the kill: freeze the child (it
                # alone writes to the study), look again, and kill only if it is still mid-trial
                child.send_signal(signal.SIGSTOP)
                if _mid_trial(_trials(name), min_complete):
                    break
                child.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        log.close()
    assert child.returncode == -signal.SIGKILL
    time.sleep(STALE_AFTER)  # the dead trial's heartbeat goes stale


def test_resume_after_sigkill(tmp_path: Path) -> None:
    name = "killed-svm"
    _kill_mid_study(name, tmp_path)

    before = _snapshot(name)
    complete = {n: t for n, t in before.items() if t.state == TrialState.COMPLETE}
    running = {n: t for n, t in before.items() if t.state == TrialState.RUNNING}
    assert len(complete) >= 3 and len(running) == 1, {n: t.state for n, t in before.items()}
    (lost,) = running.values()
    assert lost.params  # at least the model was suggested before the kill
    assert studies.n_finished(studies.load_study(name)) == len(complete)

    budget = len(complete) + 2
    result = Assistant().resume(name, n_trials=budget)

    after = _snapshot(name)
    # every trial completed before the kill is still there, untouched and not re-run
    for n, t in complete.items():
        kept = after[n]
        assert kept.state == TrialState.COMPLETE
        assert (kept.value, kept.params, kept.datetime_start, kept.datetime_complete) == (
            t.value, t.params, t.datetime_start, t.datetime_complete)
        assert kept.user_attrs == t.user_attrs
    # the trial the kill interrupted is failed (not as the trial's own error), and its config ran again
    gone = after[lost.number]
    assert gone.state == TrialState.FAIL and "error" not in gone.user_attrs
    assert gone.params == lost.params and "model" in lost.params
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retries) == 1
    (retry,) = retries
    assert retry.number > max(before) and retry.state == TrialState.COMPLETE
    assert retry.params == lost.params  # the same model and config
    assert retry.user_attrs.get("source", "bo") == lost.user_attrs.get("source", "bo")
    assert retry.user_attrs.get("rationale") == lost.user_attrs.get("rationale")
    assert len(retry.user_attrs["fold_values"]) == 3 and retry.value is not None
    # only the budget's remainder ran: the retry and one new trial
    new = [t for n, t in after.items() if n not in before]
    assert len(new) == 2 and all(t.state == TrialState.COMPLETE for t in new)
    assert min(t.datetime_start for t in new) > max(t.datetime_complete for t in complete.values())  # type: ignore[type-var]
    # the study holds exactly the budgeted number of counted trials
    study = studies.load_study(name)
    assert studies.n_finished(study) == budget
    assert len(study.trials) == budget + 1  # plus the interrupted one, which does not count
    assert result.study_name == name and result.task.n_trials == budget
    assert result.n_trials == budget and result.n_failed == 0  # the interrupted trial is not a failure
    assert list(result.trials.state).count("FAIL") == 1 and len(result.trials) == budget + 1
    assert result.report_path.is_file() and result.model_path.is_file()
    assert result.cv_score == pytest.approx(study.best_value)


def test_solve_again_with_the_same_name_resumes_after_an_abandoned_trial() -> None:
    """Deterministic version of the crash: a trial is asked and never told."""
    task = Task(data="sklearn:iris", models=["decision_tree"], n_trials=3, cv_folds=2, study_name="abandoned")
    Assistant().solve(task)
    study = studies.load_study("abandoned")
    before = _snapshot("abandoned")
    orphan = study.ask()
    StudySpace([get_model_card("decision_tree")]).suggest(orphan)
    with studies.heartbeat(study, orphan):  # it ran for a moment, then its process died
        pass
    orphan_params = studies.load_study("abandoned").trials[orphan.number].params
    time.sleep(STALE_AFTER)

    result = Assistant().solve(task.model_copy(update={"n_trials": 5}))

    after = _snapshot("abandoned")
    for n, t in before.items():
        assert (after[n].state, after[n].value, after[n].datetime_complete) == (t.state, t.value, t.datetime_complete)
    assert after[orphan.number].state == TrialState.FAIL and "error" not in after[orphan.number].user_attrs
    retry = [t for t in after.values() if t.system_attrs.get("failed_trial") == orphan.number]
    assert len(retry) == 1 and retry[0].params == orphan_params and retry[0].state == TrialState.COMPLETE
    assert retry[0].number == orphan.number + 1  # the queued retry runs first
    assert "source" not in retry[0].user_attrs  # BO's, as the orphan was
    assert studies.n_finished(studies.load_study("abandoned")) == 5
    assert len(after) == 6
    assert result.n_trials == 5 and result.n_failed == 0
    assert len(result.trials) == 6 and list(result.trials.state).count("FAIL") == 1
    # the memory (on by default) keeps the retry, not the dead trial as a failed config
    from hyperpilot.memory import Memory

    memory = Memory()
    stored = {t.number: t.status for t in memory.trials("abandoned/decision_tree")}
    memory.close()
    assert stored == {n: "complete" for n in range(6) if n != orphan.number}


def test_a_trial_with_a_fresh_heartbeat_is_not_taken_for_dead() -> None:
    """Opening a study while another process's trial is alive (heartbeat recent) leaves it running."""
    task = Task(data="sklearn:iris", models=["knn"], n_trials=2, cv_folds=2, study_name="alive")
    Assistant().solve(task)
    study = studies.load_study("alive")
    other = study.ask()
    StudySpace([get_model_card("knn")]).suggest(other)
    with studies.heartbeat(study, other):  # the other process is still beating
        result = Assistant().solve(task.model_copy(update={"n_trials": 3}))
    trials = _snapshot("alive")
    assert trials[other.number].state == TrialState.RUNNING
    assert not any(t.system_attrs.get("failed_trial") is not None for t in trials.values())
    assert result.n_trials == 3 and studies.n_finished(studies.load_study("alive")) == 3


def test_resume_with_a_larger_budget_adds_trials() -> None:
    first = Assistant().solve(Task(data="sklearn:iris", models=["knn"], n_trials=2, cv_folds=2, study_name="grow"))
    before = _snapshot("grow")
    second = Assistant().resume("grow", n_trials=4)
    after = _snapshot("grow")
    assert len(before) == 2 and len(after) == 4
    for n, t in before.items():
        assert after[n].datetime_complete == t.datetime_complete and after[n].value == t.value
    assert after[0].user_attrs["source"] == "default"
    assert not any("source" in after[n].user_attrs for n in (2, 3))  # BO's: no second default
    assert list(second.trials.source) == ["default", "bo", "bo", "bo"]
    assert second.task.n_trials == 4 and second.n_trials == 4
    assert first.task.metric == second.task.metric == "accuracy"
    # a resume with the budget already spent runs nothing new and still reports
    third = Assistant().resume("grow")
    assert len(_snapshot("grow")) == 4 and third.n_trials == 4


def test_resume_unknown_study() -> None:
    with pytest.raises(StudyError, match="no study named 'never-made'"):
        Assistant().resume("never-made")


def test_resume_a_study_not_made_by_hyperpilot() -> None:
    optuna.create_study(study_name="foreign", storage=studies.storage())
    with pytest.raises(StudyError, match="was not made by hyperpilot"):
        Assistant().resume("foreign")
