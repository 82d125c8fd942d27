"""hyperpilot itself: `Assistant.solve` on the problem's task (same data seed, so the same
objective as every other method). Variants differ only in the proposers they switch on.
Trials run in-process here (no sandbox) so that wall times compare with the baselines, and
with the benchmark's model cards (`evals.spaces.benchmark_cards`), the spaces every other
method searches.

A lookup table (HPOBench) has no data to solve, so there hyperpilot's own loop
(`core.loop.StudyLoop`) runs the table lookup as the objective, over a one-model space made
from the table's search space (`table_card`), with hyperpilot's BO engine
(`samplers.make_sampler("tpe", seed, budget)`) and the method's `table_proposers` (memory)."""

from __future__ import annotations

import math
import time
from typing import Any

import optuna

from evals.methods.base import Method, Trace, fresh_home
from evals.problems import Problem
from hyperpilot.cards.model import ModelCard
from hyperpilot.core import Outcome, Proposer, StudyContext, StudyLoop, StudySpace, Suggestion, TrialHandle, TrialRecord


class Hyperpilot(Method):
    def __init__(self, name: str, **assistant_kwargs: Any) -> None:
        self.name = name
        self.assistant_kwargs = assistant_kwargs

    def assistant(self, problem: Problem) -> Any:
        from hyperpilot import Assistant
        from hyperpilot.sandbox import InProcessExecutor

        return Assistant(executor=InProcessExecutor(), **self.assistant_kwargs)

    def supports(self, problem: Problem) -> bool:
        return problem.task is not None or self.assistant_kwargs.get("llm", "none") == "none"

    def table_proposers(self, problem: Problem, card: ModelCard, budget: int) -> list[Proposer]:
        """The proposers besides BO on a table (none here; see `HyperpilotMemory`)."""
        return []

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        if problem.task is None:
            return self.run_table(problem, budget, seed)
        from evals.spaces import benchmark_cards
        from hyperpilot import Task
        from hyperpilot.metrics import get_metric

        with fresh_home():
            start = time.perf_counter()
            task = Task(**{**problem.task, "seed": seed, "n_trials": budget})
            with benchmark_cards():
                result = self.assistant(problem).solve(task)
            wall = time.perf_counter() - start
        sign = 1 if get_metric(str(task.metric)).direction == "minimize" else -1
        trials = result.trials[result.trials.state.isin(["COMPLETE", "FAIL"])].sort_values("number").head(budget)
        trace = Trace(wall_seconds=wall)
        for row in trials.itertuples():
            value = row.value
            ok = row.state == "COMPLETE" and value is not None and not math.isnan(value)
            trace.losses.append(sign * float(value) if ok else math.inf)
            trace.configs.append(dict(row.config))
            trace.objective_seconds.append(float(row.seconds or 0.0))
        return trace

    def run_table(self, problem: Problem, budget: int, seed: int) -> Trace:
        from hyperpilot.samplers import make_sampler
        from hyperpilot.task import Task

        start = time.perf_counter()
        card = table_card(problem)
        study = optuna.create_study(sampler=make_sampler("tpe", seed, budget), pruner=optuna.pruners.NopPruner())  # minimise the loss
        ctx = StudyContext(Task(data=problem.name, seed=seed, n_trials=budget), study, StudySpace([card]))
        trace = Trace()

        def objective(handle: TrialHandle) -> Outcome:
            t0 = time.perf_counter()
            loss = problem.loss(handle.config)
            seconds = time.perf_counter() - t0
            return Outcome(loss, seconds) if math.isfinite(loss) else Outcome(None, seconds, "the loss is not finite")

        def on_trial(record: TrialRecord) -> None:
            trace.losses.append(math.inf if record.value is None else record.value)
            trace.configs.append(dict(record.config))
            trace.objective_seconds.append(record.seconds)

        proposers = self.table_proposers(problem, card, budget)  # memory retrieval counts in the wall time
        StudyLoop(ctx, objective, proposers, on_trial=on_trial).run(budget)
        trace.wall_seconds = time.perf_counter() - start
        return trace


class Queued(Proposer):
    """Warm-start configs, queued first on a fresh study (in order)."""

    name = "memory"

    def __init__(self, model: str, configs: list[dict[str, Any]], source: str = "memory") -> None:
        self.model, self.configs, self.source = model, configs, source

    def start(self, ctx: StudyContext) -> list[Suggestion]:
        return [Suggestion(self.model, c, self.source) for c in self.configs] if ctx.fresh else []


def table_card(problem: Problem) -> ModelCard:
    """A one-model card for a table's search space (what `StudySpace` tunes); its default is
    the middle of the space (unused: a table's study queues no card default)."""
    card = problem.card() if problem.card is not None else None
    return ModelCard.model_validate({
        "name": card.model if card else "table", "title": problem.name, "family": card.family if card else "table",
        "description": f"the lookup table of {problem.name}", "task_types": ["binary", "multiclass", "regression"],
        "space": problem.space, "default": problem.space.defaults()})
