"""The method adapter: `run(problem, budget, seed) -> Trace`. A new method is a small file
with one class registered in `methods/__init__.py`."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from evals.problems import Problem


@dataclass
class Trace:
    """What one optimiser run did: the loss of each trial in order, its config, the
    seconds spent in the objective, and the whole wall time."""

    losses: list[float] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    objective_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def overhead_per_suggestion(self) -> float:
        """Seconds the method itself spent per trial (wall time minus the objective)."""
        return max(0.0, self.wall_seconds - sum(self.objective_seconds)) / max(1, len(self.losses))


class Method:
    name = "method"

    def unavailable(self) -> str | None:
        """Why this method cannot run here (a missing package or venv), or None."""
        return None

    def supports(self, problem: Problem) -> bool:
        """Whether this method can run `problem` (e.g. an LLM needs data, not a table)."""
        return True

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        raise NotImplementedError


def ask_tell(problem: Problem, budget: int, ask: Callable[[], dict[str, Any]],
             tell: Callable[[dict[str, Any], float], None]) -> Trace:
    """The loop every ask/tell baseline shares."""
    trace = Trace()
    start = time.perf_counter()
    for _ in range(budget):
        config = ask()
        t0 = time.perf_counter()
        loss = problem.loss(config)
        trace.objective_seconds.append(time.perf_counter() - t0)
        trace.losses.append(loss)
        trace.configs.append(config)
        tell(config, loss if math.isfinite(loss) else 1e9)
    trace.wall_seconds = time.perf_counter() - start
    return trace


@contextmanager
def fresh_home() -> Iterator[str]:
    """`HYPERPILOT_HOME` pointed at a new temporary folder (no studies, an empty memory) for
    the duration, then put back as it was."""
    old = os.environ.get("HYPERPILOT_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["HYPERPILOT_HOME"] = home
        try:
            yield home
        finally:
            if old is None:
                os.environ.pop("HYPERPILOT_HOME", None)
            else:
                os.environ["HYPERPILOT_HOME"] = old
