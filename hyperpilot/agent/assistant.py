"""`Assistant.solve(task) -> Result`: a tuning task from data to a saved, scored model.

    load + profile data ─► open (or resume) the Optuna study ─► `core.loop.StudyLoop` with
    the proposers (card defaults, memory, LLM, code) and BO, running the cross-validation
    objective (`core.cv`) on the executor, `workers` trials at once ─► refit the best config
    through the same executor ─► score the held-out split here ─► save model and report

The loop, the arbitration between proposers and the scoring live in `hyperpilot.core`;
this module only wires the parts together."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import joblib
import optuna

from hyperpilot import studies
from hyperpilot.agent.code_proposer import CodeProposer, ProgramChooser
from hyperpilot.agent.llm import LLM, EmbeddedLLM, OpenAICompatLLM, ScriptedLLM, default_spec, resolve_llm
from hyperpilot.agent.policy import DEFAULT_RATE, LLMProposer, memory_examples
from hyperpilot.cards import DatasetCard, get_model_card
from hyperpilot.core.cv import CrossValidation
from hyperpilot.core.executor import Executor
from hyperpilot.core.loop import StudyLoop
from hyperpilot.core.proposer import CardDefaults, Proposer, StudyContext
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Result, TrialRecord, trial_seed
from hyperpilot.data import Dataset, check_folds, check_target, infer_task_type, load_dataset, screen, split
from hyperpilot.errors import HyperpilotError, StudyError
from hyperpilot.report import write_report
from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor, warn_weak_sandbox
from hyperpilot.sandbox.ray_executor import RayExecutor
from hyperpilot.task import Task
from hyperpilot.trainers import FittedModel, get_trainer
from hyperpilot.trainers.code import CUSTOM_CODE

if TYPE_CHECKING:
    from hyperpilot.memory import Memory, MemoryProposer


class Assistant:
    """Tunes models for a `Task`.

    `proposers` add configs besides BO (see `core.proposer`); `executor` decides where a
    trial runs (by default a `SandboxExecutor(workers=workers)`: each trial in isolated
    processes; `InProcessExecutor()` runs trials in this process, for debugging; `RayExecutor(address)`
    runs each trial as a Ray task, sandboxed on a Ray worker); `workers`
    is how many trials run at once; `sampler` is the BO engine (an Optuna sampler, or a
    name: tpe, gp, random, qmc, cmaes, …; default the task's); `pruner` an Optuna pruner
    that may stop a trial after a fold (default none); `on_trial` is called after every trial.
    `llm` is the planner's model (an `LLM` or a spec: "embedded", "none" for pure BO,
    "openai:MODEL", "http://HOST:PORT/v1#MODEL"; default `$HYPERPILOT_LLM`, else "embedded");
    it proposes the initial design and replaces BO's candidate at `llm_rate` of the steps.
    `memory` warm-starts from similar past studies and stores this one (see `hyperpilot.memory`):
    True (default) for the memory under HYPERPILOT_HOME, a `Memory`, or None/False for none.
    `on_start` is called once per solve with the resolved task (type, metric, models, study
    name filled in), just before the first trial. `storage` is where the study lives: any
    Optuna RDB URL (e.g. postgresql://user@host:5432/db: workers on several machines share
    one study) or a journal file (`journal:PATH`, a .log/.jsonl path); default
    `$HYPERPILOT_STORAGE`, else SQLite under HYPERPILOT_HOME (`studies.storage`). Each solve stores these run settings with
    the study (`studies.run_settings`, never a key) so that `hyperpilot resume` reuses them."""

    def __init__(
        self,
        proposers: list[Proposer] | None = None,
        executor: Executor | None = None,
        on_trial: Callable[[TrialRecord], None] | None = None,
        llm: LLM | str | None = None,
        llm_rate: float | None = None,
        memory: Memory | MemoryProposer | bool | None = True,
        *,
        workers: int = 1,
        sampler: optuna.samplers.BaseSampler | str | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
        on_start: Callable[[Task], None] | None = None,
        storage: str | None = None,
    ) -> None:
        from hyperpilot.memory.proposer import memory_proposer

        if workers < 1:
            raise HyperpilotError(f"workers must be at least 1, got {workers}")
        self.proposers = list(proposers or [])
        warm = memory_proposer(memory, self.proposers)  # first: its configs come right after the defaults
        self.proposers[:0] = [warm] if warm is not None else []
        self.llm = resolve_llm(default_spec() if llm is None else llm)
        if self.llm is not None:
            self.proposers.append(LLMProposer(self.llm, rate=DEFAULT_RATE if llm_rate is None else llm_rate,
                                              examples=memory_examples(warm) if warm is not None else None))
        self.executor = executor
        self.workers = workers
        self.sampler = sampler
        self.pruner = pruner
        self.on_trial = on_trial
        self.on_start = on_start
        self.llm_rate = llm_rate
        self.uses_memory = warm is not None
        self.storage = storage

    def solve(self, task: Task) -> Result:
        """Tune `task` within its budget (`n_trials`, `timeout` counted from this call, or
        both; see `core.loop` for a trial running at the deadline), refit the best config and
        score it on the held-out rows (none when `task.test_size` is 0: `test_score` None).
        A table given in memory (`task.frame`) is written into the study folder first."""
        start = time.perf_counter()
        if isinstance(self.sampler, str):
            task = task.updated(sampler=self.sampler)  # validated: an unknown name is one line
        data = load_dataset(task.data, task.target, encoding=task.encoding, frame=task.frame)
        task_type = task.task_type or infer_task_type(data.y)
        check_target(data.y, task_type, task.data)
        data = screen(data, task_type, task.drop, task.split_seed)  # --drop, row indices and IDs; leak warning
        task = task.resolved(task_type)
        space = StudySpace([get_model_card(m, task_type) for m in task.models])
        X_train, X_test, y_train, y_test = split(data, task) if task.test_size else (data.X, None, data.y, None)
        task = task.decided(*X_train.shape)  # validation 'auto': CV, or a holdout when the time is short for the table
        check_folds(y_train, task)  # before any trial: every fold can train on every class
        reads: dict[str, Any] = {}  # how the models read the data (a text column, an image shape), for the card
        for name in task.models:
            reads.update(get_trainer(name).check(X_train, task))  # features the model cannot use at all: one line now
        executor = self.executor or SandboxExecutor(workers=self.workers)
        warm = getattr(executor, "warm", None)
        if callable(warm):
            warm()  # sandbox workers start now, while the study, the LLM and the proposers do
        card = DatasetCard.profile(Dataset(data.name, X_train, y_train, data.target, data.dropped, data.leaks), task_type, **reads)

        if task.frame is not None:  # a table given in memory: kept in the study folder, so resume finds it
            task = task.stored_at(str(studies.save_data(str(task.study_name), task.frame)))
        study = studies.open_study(task, self.storage)
        study.sampler = (self.sampler if isinstance(self.sampler, optuna.samplers.BaseSampler)
                         else studies.make_sampler(task, len(study.trials), parallel=self.workers > 1))
        study.pruner = self.pruner or studies.make_pruner(space.cards.values())  # the cards' pruner, else none
        warn_weak_sandbox(executor)  # once per solve: under unshare/plain a trial can read this machine's files
        studies.set_run_settings(study, self.run_settings(executor))
        programs = ProgramChooser(study, str(task.study_name))
        objective = CrossValidation(executor, X_train, y_train, task, code_for=programs.code_for)
        ctx = StudyContext(task, study, space, card)
        loop = StudyLoop(ctx, objective, [CardDefaults(), *self._proposers(task)], workers=self.workers, on_trial=self.on_trial,
                         heartbeat=studies.heartbeat, reserve=objective.refit_seconds)  # the refit fits in the time budget
        deadline = start + task.timeout if task.timeout else None
        if self.on_start is not None:
            self.on_start(task)
        loop.run(task.n_trials, deadline)

        best = _best_trial(study)
        model, config = space.from_params(best.params)
        code = programs.program_of(best)
        fitted, test_score = objective.refit(model, config, X_test, y_test, trial_seed(task.seed, best.number), code)
        folder = studies.study_dir(str(task.study_name))
        joblib.dump(FittedModel(fitted, objective.classes, [str(c) for c in X_train.columns]), folder / "model.joblib")
        export = getattr(fitted, "export", None)
        if callable(export):  # e.g. a LoRA adapter in PEFT's format, next to the report
            export(folder)
        table = studies.trial_table(study)
        result = Result(
            study_name=str(task.study_name), task=task, best_model=model, best_config=config,
            cv_score=float(best.value), test_score=test_score,  # type: ignore[arg-type]
            n_trials=studies.n_finished(study), n_failed=studies.n_failed(study),
            n_pruned=int((table.state == "PRUNED").sum()),
            wall_seconds=time.perf_counter() - start, model_path=folder / "model.joblib",
            report_path=folder / "report.md", trials=table, dataset_card=card,
        )
        if code is not None:
            (folder / "best_program.py").write_text(code, encoding="utf-8")
        write_report(result, folder, study)
        return result

    def _proposers(self, task: Task) -> list[Proposer]:
        """This solve's proposers: when `custom_code` is among the models (`--code`) and there is
        an LLM, a fresh `CodeProposer` has the LLM write programs (checked, run in the sandbox,
        repaired a bounded number of times, else BO), placed before the LLM planner; unless
        the caller gave one."""
        if CUSTOM_CODE not in task.models or self.llm is None or any(isinstance(p, CodeProposer) for p in self.proposers):
            return self.proposers
        at = next((i for i, p in enumerate(self.proposers) if isinstance(p, LLMProposer)), len(self.proposers))
        return [*self.proposers[:at], CodeProposer(self.llm.text), *self.proposers[at:]]

    def resume(self, study_name: str, n_trials: int | None = None) -> Result:
        """Continue a study by name (after a crash, or with a larger budget)."""
        task = studies.stored_task(studies.load_study(study_name, self.storage))
        if n_trials is not None:
            task = task.model_copy(update={"n_trials": n_trials})
        return self.solve(task)

    def run_settings(self, executor: Executor | None = None) -> dict[str, Any]:
        """How this assistant runs a study, as `hyperpilot resume` rebuilds it: the planner's
        LLM spec (None when the object cannot be rebuilt from a spec; never a key, at most the
        name of the variable that holds one), its rate, the sampler, memory on/off, workers,
        and the executor's sandbox, trial timeout, trial memory and Ray address."""
        executor = executor or self.executor
        limits = getattr(executor, "limits", None)
        return {
            "llm": _llm_spec(self.llm), "llm_rate": self.llm_rate,
            "sampler": self.sampler if isinstance(self.sampler, str) else None,
            "memory": self.uses_memory, "workers": self.workers,
            "no_sandbox": isinstance(executor, InProcessExecutor),
            "trial_timeout": getattr(executor, "trial_timeout", None),
            "trial_memory": getattr(limits, "memory_mb", None),
            "ray": (executor.address or "auto") if isinstance(executor, RayExecutor) else None,
        }


def _llm_spec(llm: LLM | None) -> str | None:
    """The `resolve_llm` spec that rebuilds `llm`, or None for an object no spec rebuilds."""
    if llm is None:
        return "none"
    if isinstance(llm, EmbeddedLLM):
        return "embedded" + (f":{llm.model_path}" if llm.model_path else "")
    if isinstance(llm, ScriptedLLM):
        return "scripted" if not llm.script else None
    if isinstance(llm, OpenAICompatLLM):
        spec = llm.describe() if llm.base_url else f"openai:{llm.model}"  # describe(): the URL without user or password
        return spec + (f"?key_env={llm.api_key_env}" if llm.api_key_env else "")
    return None


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        failed = [t for t in failed if "error" in t.user_attrs]  # a process that died is not the trial's fault
        if not failed:
            raise StudyError(f"no trial of '{study.study_name}' finished (is --timeout too short?); "
                             f"continue it with `hyperpilot resume {study.study_name}`")
        first = failed[0].user_attrs.get("error", "")
        raise StudyError(f"all {len(failed)} trials of '{study.study_name}' failed; first error: {first}")
    return study.best_trial
