"""The shared types of a study: what a proposer suggests, what a trial's run produced,
what the loop tells observers after each trial, and the result of a tuning task. Nothing
here imports the rest of hyperpilot but the typed leaves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hyperpilot.cards import DatasetCard
from hyperpilot.task import Task

SOURCES = ("default", "memory", "llm", "code", "bo", "retry", "user")


@dataclass(frozen=True)
class Suggestion:
    """A config to try, and where it came from.

    `source` names the proposer (default, memory, llm, code, bo, …); `rationale` is why
    (kept with the trial); `code` is a program for the `custom_code` model; `attrs` are
    extra user attributes to store with the trial (JSON values)."""

    model: str
    config: dict[str, Any]
    source: str
    rationale: str = ""
    code: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What running one trial gave the coordinator.

    `value` is the score the coordinator computed (None when the trial failed or was
    pruned); `steps` the intermediate values it reported (per fold / per epoch); `attrs`
    what to store with the trial (e.g. the program's `code_id`, a traceback)."""

    value: float | None
    seconds: float
    error: str = ""
    pruned: bool = False
    steps: list[float] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class TrialRecord:
    """What the loop tells proposers and progress callbacks after each trial."""

    number: int
    source: str
    model: str
    config: dict[str, Any]
    value: float | None
    seconds: float
    error: str
    best_value: float | None
    n_done: int
    n_total: int | None  # the trial cap; None: a time budget alone
    state: str = "COMPLETE"
    attrs: dict[str, Any] = field(default_factory=dict)

    def value_text(self) -> str:
        """The value as progress lines show it: 4 decimals, or what happened instead ("time
        up": stopped at the end of the time budget)."""
        if self.value is not None:
            return f"{self.value:.4f}"
        if self.state == "PRUNED":
            return "time up" if self.attrs.get("stopped") == "deadline" else "pruned"
        return "failed"


class Stop(Exception):
    """Raised inside a running job when the coordinator asked it to stop (pruned)."""


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number` of a study seeded with `seed` (explicit, not global state):
    the same whichever worker runs it."""
    return (seed * 1_000_003 + number * 7_919 + 12_345) % (2**31 - 1)


@dataclass
class Result:
    study_name: str
    task: Task
    best_model: str
    best_config: dict[str, Any]
    cv_score: float
    test_score: float | None  # None: nothing held out (task.test_size == 0)
    n_trials: int
    n_failed: int
    wall_seconds: float
    model_path: Path
    report_path: Path
    trials: pd.DataFrame = field(repr=False)
    dataset_card: DatasetCard = field(repr=False)
    n_pruned: int = 0

    def summary(self) -> str:
        pruned = f", {self.n_pruned} pruned" if self.n_pruned else ""
        return (
            f"{self.best_model} {json.dumps(self.best_config, default=str)}: CV {self.task.metric} "
            f"{self.cv_score:.4f}, {'no held-out test' if self.test_score is None else f'test {self.test_score:.4f}'} ({self.n_trials} trials, "
            f"{self.n_failed} failed{pruned}, {self.wall_seconds:.1f} s)"
        )
