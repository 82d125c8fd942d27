"""hyperpilot: an LLM-agent driven AutoML assistant with Bayesian optimisation in control.

The public names below are imported on first use (`from hyperpilot import Assistant, Task`
works as usual), so that `import hyperpilot` — and with it the command line's `--help` —
does not load optuna, scikit-learn or pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperpilot.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "Assistant": "hyperpilot.agent", "Result": "hyperpilot.agent", "task_from_text": "hyperpilot.agent.request",
    "DataError": "hyperpilot.errors", "HyperpilotError": "hyperpilot.errors", "SpaceError": "hyperpilot.errors",
    "StudyError": "hyperpilot.errors", "TaskError": "hyperpilot.errors",
    "CategoricalParam": "hyperpilot.space", "FloatParam": "hyperpilot.space", "IntParam": "hyperpilot.space",
    "SearchSpace": "hyperpilot.space", "Task": "hyperpilot.task",
    "AutoClassifier": "hyperpilot.estimator", "AutoRegressor": "hyperpilot.estimator",
}
__all__ = [
    "Assistant", "AutoClassifier", "AutoRegressor", "CategoricalParam", "DataError", "FloatParam", "HyperpilotError", "IntParam",
    "Result", "SearchSpace", "SpaceError", "StudyError", "Task", "TaskError", "task_from_text",
]

if TYPE_CHECKING:
    from hyperpilot.agent import Assistant, Result
    from hyperpilot.agent.request import task_from_text
    from hyperpilot.errors import DataError, HyperpilotError, SpaceError, StudyError, TaskError
    from hyperpilot.estimator import AutoClassifier, AutoRegressor
    from hyperpilot.space import CategoricalParam, FloatParam, IntParam, SearchSpace
    from hyperpilot.task import Task

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
