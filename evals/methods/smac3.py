"""SMAC3 (HPO facade: random-forest surrogate), ask/tell."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from evals.methods.base import Method, Trace, ask_tell
from evals.problems import Problem
from hyperpilot.space import CategoricalParam, FloatParam, SearchSpace


class SMAC3(Method):
    name = "smac"

    def unavailable(self) -> str | None:
        try:
            import smac  # noqa: F401
        except ImportError:
            return "smac is not installed (pip install smac)"
        return None

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        from smac import HyperparameterOptimizationFacade, Scenario
        from smac.runhistory.dataclasses import TrialValue

        with tempfile.TemporaryDirectory() as out:
            scenario = Scenario(_configspace(problem.space, seed), deterministic=True, n_trials=budget,
                                seed=seed, output_directory=Path(out))
            facade = HyperparameterOptimizationFacade(
                scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=40,
                initial_design=HyperparameterOptimizationFacade.get_initial_design(scenario, n_configs=min(10, budget)),
            )
            pending: list[Any] = []

            def ask() -> dict[str, Any]:
                info = facade.ask()
                pending.append(info)
                return dict(info.config)

            def tell(config: dict[str, Any], loss: float) -> None:
                facade.tell(pending.pop(), TrialValue(cost=loss))

            return ask_tell(problem, budget, ask, tell)


def _configspace(space: SearchSpace, seed: int) -> Any:
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for p in space.params:
        if isinstance(p, FloatParam):
            cs.add(Float(p.name, (p.low, p.high), log=p.log))
        elif isinstance(p, CategoricalParam):
            cs.add(Categorical(p.name, [str(c) for c in p.choices]))
        else:
            cs.add(Integer(p.name, (p.low, p.high), log=p.log))
    return cs
