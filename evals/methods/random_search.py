"""Random search: each config drawn uniformly (log-uniformly for log params)."""

from __future__ import annotations

import numpy as np

from evals.methods.base import Method, Trace, ask_tell
from evals.problems import Problem


class RandomSearch(Method):
    name = "random"

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        rng = np.random.default_rng(seed)
        return ask_tell(problem, budget, lambda: problem.space.sample(rng), lambda c, y: None)
