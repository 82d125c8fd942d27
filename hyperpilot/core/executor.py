"""The `Executor` extension point: where a trainer job runs (this process, a sandboxed
worker pool, later Ray). The core hands it a `Job` and a report callback; it never
learns how the job ran, only what came back.

A `Job` fits `model` with `config` once per fold on the fold's fit rows and predicts the
fold's other rows (their labels are not part of what the trainer is given); after each
fold the executor passes the predictions to `on_report(step, response)` — the report
channel — whose True answer means stop (pruned). A refit job has one fold that fits every
row and predicts `X_new` (nothing when `X_new` is None), and keeps the fitted model.

Lifecycle: constructing an executor does no I/O; `warm()`, where an executor has it,
starts its workers in the background (a solve calls it as soon as the data checks
pass, so their start-up overlaps profiling and the planner's start); `run` may be called
from several threads at once, up to `workers` jobs in parallel; `close()` frees what it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from hyperpilot.task import Task

# "predict" | "proba" | "decision" -> array, one row per predicted row; a trainer that trains
# in epochs adds "epoch" (0-d int) and "device" (0-d str) to each fold's report (`core.cv.EpochCurve`)
Response = dict[str, np.ndarray]
ReportFn = Callable[[int, Response], bool]  # (step, response) -> stop?
Fold = tuple[np.ndarray, np.ndarray | None]  # (rows to fit on, rows to predict; None: predict X_new)


@dataclass(frozen=True)
class Job:
    """What a trainer job is given. `y` holds class codes 0..k-1 (classification) or
    values; `responses` are the kinds of prediction wanted, preferred first; `code` a
    `custom_code` program; `seed` the trial's derived seed; `stop_at` a `time.perf_counter()`
    instant, the end of a time budget's trials: an executor that can stop a running job (the
    sandbox's, also inside a Ray task) stops it there, with `JobResult.stopped` (an in-process
    job runs on: a thread cannot be killed)."""

    model: str
    config: dict[str, Any]
    task: Task
    X: pd.DataFrame
    y: np.ndarray
    folds: list[Fold]
    responses: tuple[str, ...]
    seed: int = 0
    X_new: pd.DataFrame | None = None
    code: str | None = None
    keep_model: bool = False
    n_classes: int | None = None
    stop_at: float | None = None


@dataclass(frozen=True)
class JobResult:
    """How a job ended. `model` is the fitted model of a refit (`keep_model`); `attrs`
    are facts to store with the trial (the sandbox layer, a traceback for a code writer)."""

    ok: bool
    seconds: float
    error: str = ""
    stopped: bool = False
    model: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    """Runs trainer jobs. `workers` is how many may run at once."""

    workers: int

    def run(self, job: Job, on_report: ReportFn) -> JobResult:
        """Run `job`, calling `on_report` after each fold; never raises for what the job does."""
        ...

    def close(self) -> None:
        """Free workers and files."""
        ...
