"""Optuna's samplers as users run them: default sampler settings, ask/tell. With
`default=True` the problem's card default is enqueued as trial 0 (`enqueue_trial`), the
honest baseline for hyperpilot, whose every cold study also starts from the card default:
`tpe+default`, `random+default`."""

from __future__ import annotations

from typing import Any

import optuna

from evals.methods.base import Method, Trace, ask_tell
from evals.problems import Problem

optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler, "random": optuna.samplers.RandomSampler}


def card_default(problem: Problem) -> dict[str, Any] | None:
    """The default config of the benchmark card of a one-model problem (what hyperpilot's
    `Assistant` tries first), or None for a lookup table (no card default)."""
    if problem.task is None or len(problem.task.get("models", [])) != 1:
        return None
    from evals.spaces import bench_card

    return bench_card(problem.task["models"][0]).default_config()


class OptunaSampler(Method):
    def __init__(self, sampler: str, default: bool = False) -> None:
        self.sampler, self.default = sampler, default
        self.name = f"{sampler}+default" if default else sampler

    def supports(self, problem: Problem) -> bool:
        return not self.default or card_default(problem) is not None

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        study = optuna.create_study(sampler=SAMPLERS[self.sampler](seed=seed))
        if self.default:
            study.enqueue_trial(card_default(problem) or {})
        dists = problem.space.distributions()
        pending: list[optuna.trial.Trial] = []

        def ask() -> dict[str, Any]:
            trial = study.ask(dists)
            pending.append(trial)
            return dict(trial.params)

        def tell(config: dict[str, Any], loss: float) -> None:
            study.tell(pending.pop(), loss)

        return ask_tell(problem, budget, ask, tell)
