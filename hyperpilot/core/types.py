"""The shared types of a study: what a proposer suggests, what a trial's run produced,
and what the loop tells observers after each trial. Nothing here imports the rest of
hyperpilot but the typed leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    n_total: int
    state: str = "COMPLETE"
    attrs: dict[str, Any] = field(default_factory=dict)


class Stop(Exception):
    """Raised inside a running job when the coordinator asked it to stop (pruned)."""


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number` of a study seeded with `seed` (explicit, not global state):
    the same whichever worker runs it."""
    return (seed * 1_000_003 + number * 7_919 + 12_345) % (2**31 - 1)
