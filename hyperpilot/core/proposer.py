"""The `Proposer` extension point: who suggests configs besides BO.

Proposers *return* `Suggestion`s; only the loop (`core.loop.StudyLoop`) writes to the
study. The arbitration, in one place (`StudyLoop._next`):

1. trials already queued in the study (the start batch below, retries of trials a dead
   process left running, configs a user enqueued), oldest first;
2. else each proposer's `suggest(ctx)`, in list order: the first suggestion that is
   valid in the space and not tried, running or queued wins;
3. else the BO engine (the study's Optuna sampler) via `study.ask()`.

Lifecycle within one run of the loop:
- `start(ctx) -> list[Suggestion]`: once; on a fresh study (`ctx.fresh`) the returned
  configs are queued in proposer order (card defaults, memory, an LLM's initial design).
- `suggest(ctx) -> Suggestion | None`: before every new trial that has nothing queued.
- `observe(ctx, record)`: after every finished trial (complete, failed or pruned).
- `finish(ctx)`: once, after the last trial.

A proposer never stops a study for a mistake of its own source (an LLM's garbage, a
memory miss): it counts it, returns None, and BO proposes instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Suggestion, TrialRecord
from hyperpilot.task import Task


@dataclass
class StudyContext:
    """What a proposer may read: the resolved task, the study, its space, the dataset card
    (when there is data) and the loop's counters."""

    task: Task
    study: optuna.Study
    space: StudySpace
    dataset_card: Any = None
    fresh: bool = True
    n_done: int = 0
    running: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tried(self) -> set[tuple[Any, ...]]:
        """Every config of the study: finished, queued and running (so no proposer repeats one)."""
        out: set[tuple[Any, ...]] = set()
        for t in self.study.get_trials(deepcopy=False):
            p = _params(t)
            if p:
                out.add(config_key(*self.space.from_params(p)))
                if isinstance(t.user_attrs.get("code_id"), str):  # a program's config is new for another program
                    out.add(config_key(*self.space.from_params(p), code_id=t.user_attrs["code_id"]))
        out.update(config_key(m, c) for m, c in self.running)
        return out


class Proposer:
    """Base class with no-op hooks; override the ones you need."""

    name = "proposer"

    def start(self, ctx: StudyContext) -> list[Suggestion]:
        """Called once before the first trial; configs to queue on a fresh study."""
        return []

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        """Called before a trial when nothing is queued; a config to try next, or None."""
        return None

    def observe(self, ctx: StudyContext, record: TrialRecord) -> None:
        """Called after every finished trial."""

    def finish(self, ctx: StudyContext) -> None:
        """Called once after the last trial."""


class CardDefaults(Proposer):
    """The first trials of a fresh study: each model card's known-good default config."""

    name = "default"

    def start(self, ctx: StudyContext) -> list[Suggestion]:
        if not ctx.fresh:
            return []
        return [Suggestion(m, card.default_config(), "default") for m, card in ctx.space.cards.items()]


def config_key(model: str, config: dict[str, Any], code_id: str | None = None) -> tuple[Any, ...]:
    """A hashable identity of a config: floats to 4 significant digits; with `code_id`,
    of the config run with that `custom_code` program."""
    key = (model, *sorted((k, float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in config.items()))
    return key if code_id is None else (*key, ("code_id", code_id))


def _params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's params; for a queued trial, the ones it was enqueued with."""
    if t.state == TrialState.WAITING:
        return dict(t.system_attrs.get("fixed_params", {}))
    return t.params
