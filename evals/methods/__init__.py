"""Method adapters, by name."""

from __future__ import annotations

from evals.methods.base import Method, Trace
from evals.methods.hebo import HEBO
from evals.methods.hyperpilot import Hyperpilot
from evals.methods.memory import HyperpilotMemory, pack_path
from evals.methods.optuna_samplers import OptunaSampler
from evals.methods.random_search import RandomSearch
from evals.methods.smac3 import SMAC3


def all_methods(suite: str = "bayesmark") -> dict[str, Method]:
    """Every method; `suite` picks the memory pack that `hyperpilot-memory` warm-starts from."""
    from evals.runner import RESULTS

    methods: list[Method] = [
        RandomSearch(), OptunaSampler("tpe"), OptunaSampler("gp"), SMAC3(), HEBO(),
        OptunaSampler("tpe", default=True), OptunaSampler("random", default=True),  # + the card default first
        Hyperpilot("hyperpilot-bo", llm="none", memory=None),          # card default + multivariate TPE
        Hyperpilot("hyperpilot-llm", llm="embedded", memory=None),     # + the embedded LLM, cold memory
        HyperpilotMemory(pack_path(RESULTS, suite)),                   # + memory of the other datasets
        HyperpilotMemory(pack_path(RESULTS, suite), "hyperpilot-memory-portfolio", transfer=False),  # its portfolio only
    ]
    return {m.name: m for m in methods}


__all__ = ["Method", "Trace", "all_methods"]
