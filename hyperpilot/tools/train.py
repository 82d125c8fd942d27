"""The train tool: evaluate one config of one model and report what happened.

A trial never raises: any failure of the trainer comes back as an `Outcome` with the
error, so the study records it and goes on."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from hyperpilot.task import Task
from hyperpilot.trainers import Evaluation, get_trainer


@dataclass(frozen=True)
class Outcome:
    evaluation: Evaluation | None
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.evaluation is not None


class Executor(Protocol):
    """Where a trial runs. Proposers never know which executor is in use."""

    def run(self, model: str, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Outcome:
        """Evaluate `config` of `model` on (X, y); never raises."""
        ...


class InProcessExecutor:
    """Runs the trial in this process: no isolation, no timeout (debugging, tests)."""

    def run(self, model: str, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Outcome:
        return run_trial(model, config, X, y, task)


def run_trial(model: str, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Outcome:
    """Cross-validate `config` of `model` in this process."""
    start = time.perf_counter()
    try:
        evaluation = get_trainer(model).evaluate(config, X, y, task)
    except Exception as e:  # noqa: BLE001 - a trial's failure is data, not a crash
        where = traceback.extract_tb(e.__traceback__)[-1]
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (at {where.name}:{where.lineno})"
        return Outcome(None, time.perf_counter() - start, error[:500])
    return Outcome(evaluation, time.perf_counter() - start)
