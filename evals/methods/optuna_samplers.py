"""Optuna TPE and GP as users run them: default sampler settings, ask/tell."""

from __future__ import annotations

from typing import Any

import optuna

from evals.methods.base import Method, Trace, ask_tell
from evals.problems import Problem

optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaSampler(Method):
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        sampler = (optuna.samplers.TPESampler(seed=seed) if self.name == "tpe"
                   else optuna.samplers.GPSampler(seed=seed))
        study = optuna.create_study(sampler=sampler)
        dists = problem.space.distributions()
        pending: list[optuna.trial.Trial] = []

        def ask() -> dict[str, Any]:
            trial = study.ask(dists)
            pending.append(trial)
            return dict(trial.params)

        def tell(config: dict[str, Any], loss: float) -> None:
            study.tell(pending.pop(), loss)

        return ask_tell(problem, budget, ask, tell)
