"""The one study loop: ask → run → tell, for every caller.

    start: proposers' warm-start configs are queued in the study (fresh study only)
    until the budget (a trial cap, a deadline, or both) is spent, keep `workers` trials in flight:
        next suggestion: queued trial ▸ first proposer that suggests ▸ BO (`study.ask`)
        run it on a worker thread: objective(handle) -> Outcome  (the handle carries the
            suggestion, a derived seed and the report channel: report / should_prune)
        when one finishes: tell the study (COMPLETE / FAIL / PRUNED), record its
            seconds and error, tell the proposers and the progress callback
    finish: proposers' `finish`

A deadline is a time budget for the loop and the work after it (the refit): the loop keeps
`reserve(best trial's seconds)` free before it (`CrossValidation.refit_seconds`), and a
running trial's own reserve too (it may become the best); it starts no trial that a typical
trial of this run (the median of its completed ones) would carry past that point, and stops
a trial still running there after its current fold, or there and then where the executor
can (`TrialHandle.stop_at`: the sandbox's), recorded PRUNED with user attr `stopped:
deadline`, once the study has a completed trial. Before that a trial finishes, and a study
without a completed trial starts one even when the deadline has passed (loading the data or
the planner took the budget), so a study ends with a model when one can be had.

A study that has no completed trial stops after `FAIL_FAST` trials of a run in a row fail
with one and the same error (a sandbox that cannot start, a missing library, every trial
timing out): more of the same would only spend the budget.

Several loops may share one study (processes on other machines, through a shared storage):
before each trial the budget is read from the storage — counted trials plus trials running
since this run began — and a trial asked in the instant another worker filled the budget is
not run: it is recorded FAIL with user attr `surplus` and does not count (`count_finished`).

Suggestions are asked in this thread only, so the order of asks (and a seeded sampler's
draws) does not depend on the workers; BO sees running trials (TPE's constant liar) and
proposers see them in `ctx.tried()`. `Assistant.solve`, the evals adapters and the tests
all run this loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import TrialState

from hyperpilot.core.proposer import Proposer, StudyContext, config_key
from hyperpilot.core.types import Outcome, Suggestion, TrialRecord, trial_seed
from hyperpilot.errors import HyperpilotError, SpaceError

log = logging.getLogger("hyperpilot.loop")
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
SURPLUS = "surplus"  # user attr of a trial asked after other workers had filled the budget (never run, not counted)
FAIL_FAST = 5  # a study with no completed trial stops after this many trials of a run fail with one and the same error


class TrialHandle:
    """One running trial as the objective sees it: what to run (`model`, `config`,
    `suggestion`), its derived `seed`, and the report channel to the coordinator."""

    def __init__(self, trial: optuna.Trial, suggestion: Suggestion, seed: int,
                 out_of_time: Callable[[], bool] | None = None, stop_at: float | None = None) -> None:
        self.trial = trial
        self.suggestion = suggestion
        self.model, self.config = suggestion.model, suggestion.config
        self.number = trial.number
        self.seed = seed
        self.steps: list[float] = []
        self.stopped_at_deadline = False
        self.stop_at = stop_at  # when the time budget's trials end (`Job.stop_at`); None: no end, or no completed trial yet
        self._out_of_time = out_of_time
        self._lock = threading.Lock()

    def report(self, value: float, step: int) -> None:
        """An intermediate value (after a fold, an epoch) — the pruner sees it."""
        with self._lock:
            self.trial.report(float(value), step)
            self.steps.append(float(value))

    def should_prune(self) -> bool:
        """Whether to stop this trial now: the study's deadline has passed, or its pruner says so."""
        with self._lock:
            if self._out_of_time is not None and self._out_of_time():
                self.stopped_at_deadline = True
                return True
            return bool(self.trial.should_prune())


class FixedTrial:
    """A handle for one config outside any study (scoring a given config, benchmarks'
    baselines): the same fields as a `TrialHandle`; reports are kept, never pruned."""

    def __init__(self, model: str, config: dict[str, Any], seed: int = 0, source: str = "fixed") -> None:
        self.suggestion = Suggestion(model, config, source)
        self.model, self.config = model, config
        self.seed = seed
        self.number = -1
        self.steps: list[float] = []
        self.stop_at: float | None = None

    def report(self, value: float, step: int) -> None:
        self.steps.append(float(value))

    def should_prune(self) -> bool:
        return False


class Objective(Protocol):
    """Runs one trial; returns an `Outcome` (never raises for what the trial does)."""

    def __call__(self, handle: TrialHandle) -> Outcome: ...


class StudyLoop:
    """Runs `objective` on the study of `ctx` with `proposers` besides BO.

    `workers`: trials in flight at once (each on its own thread; the objective decides
    where it really runs). `on_trial(record)` is called after every finished trial;
    `heartbeat(study, trial)` (a context manager around each running trial) lets a
    storage with heartbeats tell later that a trial's process died (`studies.heartbeat`);
    `reserve(seconds)`: the seconds to keep free before a deadline for the work after the
    loop, given the best trial's seconds (none kept when not given)."""

    def __init__(self, ctx: StudyContext, objective: Objective, proposers: Sequence[Proposer] = (), *,
                 workers: int = 1, on_trial: Callable[[TrialRecord], None] | None = None,
                 heartbeat: Callable[[optuna.Study, optuna.Trial], AbstractContextManager[Any]] | None = None,
                 reserve: Callable[[float], float] | None = None) -> None:
        if workers < 1:
            raise HyperpilotError(f"workers must be at least 1, got {workers}")
        self.ctx = ctx
        self.objective = objective
        self.proposers = list(proposers)
        self.workers = workers
        self.on_trial = on_trial
        self.heartbeat = heartbeat
        self.reserve = reserve
        self.rejected: dict[str, int] = {}  # suggestions dropped (invalid or duplicate), by source
        self._queued = 0
        self._best: float | None = None
        self._best_seconds = 0.0  # the best trial's seconds (what the refit's reserve scales with)
        self._seconds: list[float] = []  # this run's completed trials' seconds (a typical trial's length)
        self._errors: list[str] = []  # this run's errors in a row while the study has no completed trial
        self._warned = False
        self._deadline: float | None = None

    # -- the loop ------------------------------------------------------------------------
    def run(self, n_trials: int | None, deadline: float | None = None) -> StudyContext:
        """Run trials until the study has `n_trials` finished ones (resumed ones count; None:
        no cap) or `time.perf_counter()` passes `deadline` (see the module docstring for a
        trial running at the deadline)."""
        if n_trials is None and deadline is None:
            raise HyperpilotError("a study needs a trial cap, a deadline, or both")
        self._deadline = deadline
        self._since = datetime.now()  # Optuna's trial times are naive local times
        ctx, study = self.ctx, self.ctx.study
        trials = study.get_trials(deepcopy=False)
        ctx.fresh = not trials
        ctx.n_done = count_finished(trials)
        self._queued = sum(t.state == TrialState.WAITING for t in trials)
        self._best = _best_value(study)
        if self._best is not None:
            self._best_seconds = float(study.best_trial.user_attrs.get("seconds", 0.0))
        for proposer in self.proposers:
            for s in proposer.start(ctx):
                self._enqueue(s)
        pending: dict[Future[Outcome], tuple[TrialHandle, float]] = {}
        n_started = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hyperpilot-trial") as pool:
            while True:
                while (len(pending) < self.workers and self._room(n_trials) and not self._failing()
                       and (self._time_for_one() or (n_started == 0 and self._best is None))):
                    n_started += 1
                    handle = self._start()
                    if self._surplus(handle, n_trials):
                        break
                    pending[pool.submit(self._call, handle)] = (handle, time.perf_counter())
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f][0].number):
                    handle, started = pending.pop(future)
                    ctx.running.remove((handle.model, handle.config))
                    self._finish(handle, future.result(), time.perf_counter() - started, n_trials)
        for proposer in self.proposers:
            proposer.finish(ctx)
        return ctx

    def _room(self, n_trials: int | None) -> bool:
        """Whether the budget has room for one more trial, as the storage says now: counted
        trials, plus trials running since this run began (ours and other workers')."""
        if n_trials is None:
            return True
        trials = self.ctx.study.get_trials(deepcopy=False)
        self.ctx.n_done = count_finished(trials)
        return self.ctx.n_done + len(self._running(trials)) < n_trials

    def _running(self, trials: Sequence[optuna.trial.FrozenTrial], below: int | None = None) -> list[int]:
        """Trials running since this run began (a trial left RUNNING by a dead process
        before it does not hold budget), numbered below `below` when given."""
        return [t.number for t in trials if t.state == TrialState.RUNNING and (below is None or t.number < below)
                and t.datetime_start is not None and t.datetime_start >= self._since]

    def _surplus(self, handle: TrialHandle, n_trials: int | None) -> bool:
        """Whether `handle`'s trial came after the budget was filled (by another worker, in
        the instant between our look and our ask): then it is told FAIL as `surplus`, unrun.
        Trial numbers are given out in order by the storage, so the earlier ones win."""
        if n_trials is None or handle.number < n_trials:
            return False  # fewer than n_trials trials come before it: it cannot be over the budget
        trials = self.ctx.study.get_trials(deepcopy=False)
        earlier = count_finished([t for t in trials if t.number < handle.number])
        if earlier + len(self._running(trials, below=handle.number)) < n_trials:
            return False
        self.ctx.running.remove((handle.model, handle.config))
        handle.trial.set_user_attr(SURPLUS, True)
        handle.trial.set_user_attr("error", "not run: other workers had filled the budget")
        self.ctx.study.tell(handle.trial, state=TrialState.FAIL)
        return True

    def _call(self, handle: TrialHandle) -> Outcome:
        start = time.perf_counter()
        try:
            if self.heartbeat is not None:
                with self.heartbeat(self.ctx.study, handle.trial):
                    return self.objective(handle)
            return self.objective(handle)
        except Exception as e:  # noqa: BLE001 - an objective's own failure fails the trial, not the study
            text = str(e).splitlines()[0] if str(e) else ""
            return Outcome(None, time.perf_counter() - start, f"{type(e).__name__}: {text}"[:500])

    # -- arbitration ---------------------------------------------------------------------
    def _start(self) -> TrialHandle:
        """The next trial: a queued one, else the first proposer's valid new suggestion,
        else BO's."""
        ctx = self.ctx
        if self._queued <= 0:
            for proposer in self.proposers:
                s = proposer.suggest(ctx)
                if s is not None and self._enqueue(s, check_new=True):
                    break
        trial = ctx.study.ask()
        if self._queued > 0:  # while a queue drains, count what is left (a retry or a user may have added some)
            self._queued = len(ctx.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        model, config = ctx.space.suggest(trial)
        attrs = trial.user_attrs
        source = str(attrs.get("source", "bo"))
        suggestion = Suggestion(model, config, source, str(attrs.get("rationale", "")),
                                attrs={k: v for k, v in attrs.items() if k not in ("source", "rationale")})
        ctx.running.append((model, config))
        started = time.perf_counter()
        return TrialHandle(trial, suggestion, trial_seed(ctx.task.seed, trial.number), lambda: self._out_of_time(started),
                           stop_at=self._end_for(started) if self._best is not None else None)

    def _failing(self) -> bool:
        """Whether the last `FAIL_FAST` trials of this run, with nothing completed, failed alike."""
        if len(self._errors) < FAIL_FAST or len(set(self._errors[-FAIL_FAST:])) > 1:
            return False
        if not self._warned:
            self._warned = True
            log.warning("stopping: %d trials in a row failed with the same error: %s", FAIL_FAST, self._errors[-1])
        return True

    def _end_for(self, started: float) -> float | None:
        """When a trial started at `started` must end (None: never): the deadline less the
        reserve for the refit of the best trial so far, or of this one should it become the
        best (the latest end whose own reserve still fits; the reserve grows with a trial's
        seconds, so the bisection finds it)."""
        if self._deadline is None:
            return None
        if self.reserve is None:
            return self._deadline
        best_end = self._deadline - (self.reserve(self._best_seconds) if self._best is not None else 0.0)
        lo, hi = started, max(started, self._deadline)
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mid + self.reserve(mid - started) <= self._deadline else (lo, mid)
        return min(best_end, lo)

    def _time_for_one(self) -> bool:
        """Whether a typical trial of this run (the median of its completed ones), started now, ends in time."""
        now = time.perf_counter()
        end = self._end_for(now)
        typical = float(np.median(self._seconds)) if self._seconds else 0.0
        return end is None or now + typical < end

    def _out_of_time(self, started: float) -> bool:
        """Whether a trial started at `started` is past its time, with a completed trial to show
        for the study (a running trial may stop)."""
        end = self._end_for(started)
        return end is not None and self._best is not None and time.perf_counter() >= end

    def _enqueue(self, s: Suggestion, check_new: bool = False) -> bool:
        """Queue `s` in the study; False (and counted) when it is invalid or already tried."""
        try:
            params = self.ctx.space.to_params(s.model, s.config)
        except SpaceError as e:
            log.info("dropped a %s suggestion: %s", s.source, e)
            self.rejected[s.source] = self.rejected.get(s.source, 0) + 1
            return False
        code_id = s.attrs.get("code_id")
        key = config_key(*self.ctx.space.from_params(params), code_id=code_id if isinstance(code_id, str) else None)
        if check_new and key in self.ctx.tried():
            self.rejected[s.source] = self.rejected.get(s.source, 0) + 1
            return False
        attrs = {"source": s.source, **({"rationale": s.rationale[:300]} if s.rationale else {}), **s.attrs}
        self.ctx.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
        self._queued += 1
        return True

    # -- bookkeeping ---------------------------------------------------------------------
    def _finish(self, handle: TrialHandle, outcome: Outcome, seconds: float, n_trials: int | None) -> None:
        ctx, trial = self.ctx, handle.trial
        seconds = outcome.seconds or seconds  # the objective's own measure, else the loop's
        trial.set_user_attr("seconds", round(seconds, 4))
        extra = dict(outcome.attrs)
        if outcome.error:
            extra["error"] = outcome.error
        if outcome.steps or handle.steps:
            extra["fold_values"] = list(outcome.steps or handle.steps)
        if outcome.pruned and (handle.stopped_at_deadline or (handle.stop_at is not None and time.perf_counter() >= handle.stop_at)):
            extra["stopped"] = "deadline"
        for key, value in extra.items():
            trial.set_user_attr(key, value)
        if outcome.pruned:
            state = TrialState.PRUNED
            ctx.study.tell(trial, state=state)
        elif outcome.value is not None:
            state = TrialState.COMPLETE
            ctx.study.tell(trial, outcome.value)
            self._seconds.append(seconds)
            if self._best is None or (outcome.value > self._best if _maximize(ctx.study) else outcome.value < self._best):
                self._best, self._best_seconds = outcome.value, seconds
        else:
            state = TrialState.FAIL
            ctx.study.tell(trial, state=state)
        if self._best is None and state == TrialState.FAIL:
            self._errors.append(outcome.error or "")
        else:
            self._errors.clear()
        ctx.n_done += 1
        record = TrialRecord(
            number=handle.number, source=handle.suggestion.source, model=handle.model, config=handle.config,
            value=outcome.value if state == TrialState.COMPLETE else None, seconds=seconds,
            error=outcome.error, best_value=self._best, n_done=ctx.n_done, n_total=n_trials, state=state.name,
            attrs={**handle.suggestion.attrs, **outcome.attrs, **({"stopped": extra["stopped"]} if "stopped" in extra else {})},
        )
        for proposer in self.proposers:
            proposer.observe(ctx, record)
        if self.on_trial is not None:
            self.on_trial(record)


def retried(trials: Sequence[optuna.trial.FrozenTrial]) -> dict[int, int]:
    """Trials whose process died, each mapped to the trial that re-runs it (the last entry
    of a retry's `retry_history`, set by Optuna's `RetryHeartbeatStaleTrialCallback`; a
    retry that died too is itself retried, so it appears here as well)."""
    return {t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")}


def count_finished(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Finished trials that count against the budget: a trial failed because its process
    died (a later trial retries it) does not, nor a `surplus` one."""
    dead = retried(trials)
    return sum(t.state in FINISHED and t.number not in dead and not t.user_attrs.get(SURPLUS) for t in trials)


def _maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def _best_value(study: optuna.Study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:
        return None
