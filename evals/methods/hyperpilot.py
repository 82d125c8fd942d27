"""hyperpilot itself: `Assistant.solve` on the problem's task (same data seed, so the same
objective as every other method). Variants differ only in the proposers they switch on.
Trials run in-process here (no sandbox) so that wall times compare with the baselines."""

from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Any

from evals.methods.base import Method, Trace
from evals.problems import Problem


class Hyperpilot(Method):
    def __init__(self, name: str, **assistant_kwargs: Any) -> None:
        self.name = name
        self.assistant_kwargs = assistant_kwargs

    def unavailable(self) -> str | None:
        return None

    def assistant(self, problem: Problem) -> Any:
        from hyperpilot import Assistant
        from hyperpilot.tools import InProcessExecutor

        return Assistant(executor=InProcessExecutor(), **self.assistant_kwargs)

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        from hyperpilot import Task
        from hyperpilot.metrics import get_metric

        if problem.task is None:
            raise ValueError(f"{self.name} needs a problem with data; {problem.name} is a table")
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
