"""`Assistant.solve(task) -> Result`: the one loop.

    load + profile data ─► open (or resume) the Optuna study ─► queue each model card's
    default config ─► until the budget is spent: ask ─► run the trial ─► tell
    ─► refit the best config on the training split ─► score the held-out split
    ─► save the model and the report

Trial 0 is the card default; after that the BO engine (Optuna TPE/GP) proposes, unless a
`Proposer` (LLM, memory) enqueued a config before `ask` (see `agent.proposer`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import optuna
import pandas as pd

from hyperpilot import studies
from hyperpilot.agent.llm import LLM, default_spec, resolve_llm
from hyperpilot.agent.policy import DEFAULT_RATE, LLMProposer
from hyperpilot.agent.proposer import Proposer, SolveContext
from hyperpilot.agent.study_space import StudySpace
from hyperpilot.cards import DatasetCard, get_model_card
from hyperpilot.data import Dataset, check_target, infer_task_type, load_dataset, split
from hyperpilot.errors import StudyError
from hyperpilot.report import write_report
from hyperpilot.sandbox import SandboxExecutor
from hyperpilot.task import Task
from hyperpilot.tools import Executor, Outcome
from hyperpilot.trainers import get_trainer

if TYPE_CHECKING:
    from hyperpilot.memory import Memory, MemoryProposer


@dataclass(frozen=True)
class TrialRecord:
    """What the loop tells a progress callback after each trial."""

    number: int
    source: str
    model: str
    config: dict[str, Any]
    value: float | None
    seconds: float
    error: str
    best_value: float | None
    n_done: int
    n_total: int


@dataclass
class Result:
    study_name: str
    task: Task
    best_model: str
    best_config: dict[str, Any]
    cv_score: float
    test_score: float
    n_trials: int
    n_failed: int
    wall_seconds: float
    model_path: Path
    report_path: Path
    trials: pd.DataFrame = field(repr=False)
    dataset_card: DatasetCard = field(repr=False)

    def summary(self) -> str:
        return (
            f"{self.best_model} {json.dumps(self.best_config, default=str)}: CV {self.task.metric} "
            f"{self.cv_score:.4f}, test {self.test_score:.4f} ({self.n_trials} trials, "
            f"{self.n_failed} failed, {self.wall_seconds:.1f} s)"
        )


class Assistant:
    """Tunes models for a `Task`.

    `proposers` add configs besides BO (see `agent.proposer`); `executor` decides where a
    trial runs (by default a `SandboxExecutor`: each trial in its own isolated process;
    `InProcessExecutor()` runs trials in this process, for debugging); `on_trial` is called
    after every trial.
    `llm` is the planner's model (an `LLM` or a spec: "embedded", "none" for pure BO,
    "openai:MODEL", "http://HOST:PORT/v1#MODEL"; default `$HYPERPILOT_LLM`, else "embedded");
    it proposes the initial design and replaces BO's candidate at `llm_rate` of the steps.
    `memory` warm-starts from similar past studies and stores this one (see `hyperpilot.memory`):
    True (default) for the memory under HYPERPILOT_HOME, a `Memory`, or None/False for none."""

    def __init__(
        self,
        proposers: list[Proposer] | None = None,
        executor: Executor | None = None,
        on_trial: Callable[[TrialRecord], None] | None = None,
        llm: LLM | str | None = None,
        llm_rate: float | None = None,
        memory: Memory | MemoryProposer | bool | None = True,
    ) -> None:
        from hyperpilot.memory.proposer import memory_proposer  # here: the memory package imports the agent

        self.proposers = list(proposers or [])
        warm = memory_proposer(memory, self.proposers)  # first: its configs come right after the defaults
        self.proposers[:0] = [warm] if warm is not None else []
        self.llm = resolve_llm(default_spec() if llm is None else llm)
        if self.llm is not None:
            self.proposers.append(LLMProposer(self.llm, rate=DEFAULT_RATE if llm_rate is None else llm_rate,
                                              examples=warm.planner_examples if warm is not None else None))
        self.executor = executor or SandboxExecutor()
        self.on_trial = on_trial

    def solve(self, task: Task) -> Result:
        start = time.perf_counter()
        data = load_dataset(task.data, task.target)
        task_type = task.task_type or infer_task_type(data.y)
        check_target(data.y, task_type, task.data)
        task = task.resolved(task_type)
        space = StudySpace([get_model_card(m, task_type) for m in task.models])
        X_train, X_test, y_train, y_test = split(data, task)
        card = DatasetCard.profile(Dataset(data.name, X_train, y_train, data.target), task_type)

        study = studies.open_study(task)
        ctx = SolveContext(task, study, space, card, X_train, y_train)
        if not study.trials:
            for model in space.models:
                space.enqueue(study, model, get_model_card(model).default_config(), "default")
        for proposer in self.proposers:
            proposer.start(ctx)
        deadline = start + task.timeout if task.timeout else None
        while studies.n_finished(study) < task.n_trials and (deadline is None or time.perf_counter() < deadline):
            if not ctx.has_waiting():
                for proposer in self.proposers:
                    proposer.propose(ctx)
                    if ctx.has_waiting():
                        break
            record = self._one_trial(ctx)
            for proposer in self.proposers:
                proposer.observe(ctx, record)
            if self.on_trial is not None:
                self.on_trial(record)

        best = _best_trial(study)
        model, config = space.from_params(best.params)
        trainer = get_trainer(model)
        fitted = trainer.fit(config, X_train, y_train, task)
        test_score = trainer.score(fitted, X_test, y_test, task)
        folder = studies.study_dir(str(task.study_name))
        joblib.dump(fitted, folder / "model.joblib")
        table = studies.trial_table(study)
        result = Result(
            study_name=str(task.study_name), task=task, best_model=model, best_config=config,
            cv_score=float(best.value), test_score=test_score,  # type: ignore[arg-type]
            n_trials=studies.n_finished(study), n_failed=studies.n_failed(study),  # interrupted ones do not count
            wall_seconds=time.perf_counter() - start, model_path=folder / "model.joblib",
            report_path=folder / "report.md", trials=table, dataset_card=card,
        )
        write_report(result, folder)
        for proposer in self.proposers:
            proposer.finish(ctx, result)
        return result

    def resume(self, study_name: str, n_trials: int | None = None) -> Result:
        """Continue a study by name (after a crash, or with a larger budget)."""
        task = studies.stored_task(studies.load_study(study_name))
        if n_trials is not None:
            task = task.model_copy(update={"n_trials": n_trials})
        return self.solve(task)

    def _one_trial(self, ctx: SolveContext) -> TrialRecord:
        study, space, task = ctx.study, ctx.space, ctx.task
        trial = study.ask()
        model, config = space.suggest(trial)
        source = trial.user_attrs.get("source", "bo")
        trial.set_user_attr("source", source)
        trial.set_user_attr("model", model)
        trial.set_user_attr("config", config)
        try:
            outcome = self.executor.run(model, config, ctx.X, ctx.y, task)
        except Exception as e:  # noqa: BLE001 - an executor's own failure fails the trial, not the study
            outcome = Outcome(None, 0.0, f"executor failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        trial.set_user_attr("seconds", round(outcome.seconds, 4))
        if outcome.evaluation is not None:
            trial.set_user_attr("metrics", outcome.evaluation.metrics)
            trial.set_user_attr("fold_values", outcome.evaluation.fold_values)
            study.tell(trial, outcome.evaluation.value)
        else:
            trial.set_user_attr("error", outcome.error)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        try:
            best: float | None = study.best_value
        except ValueError:
            best = None
        return TrialRecord(
            number=trial.number, source=source, model=model, config=config,
            value=outcome.evaluation.value if outcome.evaluation else None, seconds=outcome.seconds,
            error=outcome.error, best_value=best, n_done=studies.n_finished(study), n_total=task.n_trials,
        )


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        failed = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                  if not t.user_attrs.get("interrupted")]  # a crash is not the trial's fault
        if not failed:
            raise StudyError(f"no trial of '{study.study_name}' finished (is --timeout too short?); "
                             f"continue it with `hyperpilot resume {study.study_name}`")
        first = failed[0].user_attrs.get("error", "")
        raise StudyError(f"all {len(failed)} trials of '{study.study_name}' failed; first error: {first}")
    return study.best_trial
