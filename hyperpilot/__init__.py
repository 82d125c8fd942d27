"""hyperpilot: an LLM-agent driven AutoML assistant with Bayesian optimisation in control."""

from hyperpilot.agent import Assistant, Result
from hyperpilot.agent.request import task_from_text
from hyperpilot.errors import DataError, HyperpilotError, SpaceError, StudyError, TaskError
from hyperpilot.space import CategoricalParam, FloatParam, IntParam, SearchSpace
from hyperpilot.task import Task

__version__ = "0.1.0"
__all__ = [
    "Assistant", "CategoricalParam", "DataError", "FloatParam", "HyperpilotError", "IntParam",
    "Result", "SearchSpace", "SpaceError", "StudyError", "Task", "TaskError", "task_from_text",
]
