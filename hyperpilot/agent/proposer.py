"""The `Proposer` extension point: who suggests the next config besides BO.

Optuna's sampler (TPE/GP) is always there and proposes whenever nobody else does. A
proposer adds configs by *enqueueing* them (`ctx.space.enqueue(...)`), tagged with their
source, so every trial — whoever proposed it — lives in the one Optuna study.

Lifecycle within one `Assistant.solve`:
- `start(ctx)`: once, after the study is open and the card defaults are queued; may
  enqueue warm-start trials (memory, LLM initial design).
- `propose(ctx)`: before every `study.ask()`; may enqueue one trial, which then replaces
  BO's candidate for this step.
- `observe(ctx, record)`: after every finished trial (complete or failed).
- `finish(ctx, result)`: once, after the best model is refit and reported.

A proposer never stops a study for a mistake of its own source (an LLM's garbage, a
memory miss): it counts it, enqueues nothing, and BO proposes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
import pandas as pd

from hyperpilot.agent.study_space import StudySpace
from hyperpilot.cards import DatasetCard
from hyperpilot.task import Task

if TYPE_CHECKING:
    from hyperpilot.agent.assistant import Result, TrialRecord


@dataclass
class SolveContext:
    """What a proposer may read: the resolved task, the study, its space, the data card."""

    task: Task
    study: optuna.Study
    space: StudySpace
    dataset_card: DatasetCard
    X: pd.DataFrame
    y: pd.Series

    def has_waiting(self) -> bool:
        """True when a trial is already queued (a proposer should then not add one)."""
        return bool(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


class Proposer:
    """Base class with no-op hooks; override the ones you need."""

    name = "proposer"

    def start(self, ctx: SolveContext) -> None:
        """Called once before the first trial."""

    def propose(self, ctx: SolveContext) -> None:
        """Called before every trial; may enqueue one config."""

    def observe(self, ctx: SolveContext, record: TrialRecord) -> None:
        """Called after every finished trial."""

    def finish(self, ctx: SolveContext, result: Result) -> None:
        """Called once at the end, after the report is written."""
