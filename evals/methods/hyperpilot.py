"""hyperpilot itself: `Assistant.solve` on the problem's task (same data seed, so the same
objective as every other method). Variants differ only in the proposers they switch on.
Trials run in-process here (no sandbox) so that wall times compare with the baselines.

A lookup table (HPOBench) has no data to solve, so there hyperpilot's loop is run by hand
with the same parts: its BO engine (`studies.bo_sampler`) after any warm-start configs."""

from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Any

import optuna

from evals.methods.base import Method, Trace, ask_tell
from evals.problems import Problem


class Hyperpilot(Method):
    def __init__(self, name: str, **assistant_kwargs: Any) -> None:
        self.name = name
        self.assistant_kwargs = assistant_kwargs

    def assistant(self, problem: Problem) -> Any:
        from hyperpilot import Assistant
        from hyperpilot.tools import InProcessExecutor

        return Assistant(executor=InProcessExecutor(), **self.assistant_kwargs)

    def supports(self, problem: Problem) -> bool:
        return problem.task is not None or self.assistant_kwargs.get("llm", "none") == "none"

    def warm_start(self, problem: Problem, budget: int) -> list[dict[str, Any]]:
        """Configs to try first on a table (none here; see `HyperpilotMemory`)."""
        return []

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        if problem.task is None:
            return self.run_table(problem, budget, seed)
        from hyperpilot import Task
        from hyperpilot.metrics import get_metric

        old = os.environ.get("HYPERPILOT_HOME")
        with tempfile.TemporaryDirectory() as home:
            os.environ["HYPERPILOT_HOME"] = home
            try:
                start = time.perf_counter()
                task = Task(**{**problem.task, "seed": seed, "n_trials": budget})
                result = self.assistant(problem).solve(task)
                wall = time.perf_counter() - start
            finally:
                if old is None:
                    os.environ.pop("HYPERPILOT_HOME", None)
                else:
                    os.environ["HYPERPILOT_HOME"] = old
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
        from hyperpilot.studies import bo_sampler

        start = time.perf_counter()
        study = optuna.create_study(sampler=bo_sampler("tpe", seed, budget))
        for config in self.warm_start(problem, budget):
            study.enqueue_trial(config)
        dists = problem.space.distributions()
        pending: list[optuna.trial.Trial] = []

        def ask() -> dict[str, Any]:
            pending.append(study.ask(dists))
            return problem.space.validate(dict(pending[-1].params))

        def tell(config: dict[str, Any], loss: float) -> None:
            study.tell(pending.pop(), loss)

        trace = ask_tell(problem, budget, ask, tell)
        trace.wall_seconds = time.perf_counter() - start  # memory retrieval included
        return trace
