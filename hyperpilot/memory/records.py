"""What the memory remembers: one `StudyEntry` per (study, model) and one `TrialEntry`
per finished trial. Both are pydantic models, so they are also the schema of a JSONL line
in an export or a memory pack (`{"kind": "study", ...}` / `{"kind": "trial", ...}`).

Scores of different metrics do not compare, so every trial also carries `rank`: its
rank-normalised score within its study, 1.0 for the best trial and 0.0 for the worst
(ties share the mean rank; a failed trial has none)."""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperpilot.errors import MemoryStoreError

Status = Literal["complete", "failed", "pruned"]
Direction = Literal["maximize", "minimize"]


class StudyEntry(BaseModel):
    """A past study of one model on one dataset: what it was about and what won."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["study"] = "study"
    id: str = Field(min_length=1, max_length=300, description="'<optuna study name>/<model>'")
    dataset: str = Field(description="dataset name, e.g. sklearn:wine; the key of leave-one-out filters")
    task_type: str
    model: str
    family: str = ""
    metric: str
    direction: Direction
    card_text: str = Field(description="the dataset card (and task) as text; what is embedded")
    meta_features: dict[str, float] = Field(default_factory=dict)
    best_config: dict[str, Any] | None = None
    best_score: float | None = None
    top_configs: list[dict[str, Any]] = Field(default_factory=list, description="best configs first, up to 5")
    n_trials: int = 0
    origin: str = Field(default="local", description="'local' for this machine's studies, else the pack's name")
    created: float = Field(default_factory=time.time)

    @field_validator("meta_features")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        return {k: float(x) for k, x in v.items() if x is not None and math.isfinite(float(x))}


class TrialEntry(BaseModel):
    """One finished trial of a study."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["trial"] = "trial"
    study_id: str = Field(min_length=1)
    number: int = Field(ge=0)
    model: str
    config: dict[str, Any]
    score: float | None = None
    rank: float | None = Field(default=None, ge=0.0, le=1.0)
    status: Status = "complete"
    source: str = "bo"

    @property
    def id(self) -> str:
        return f"{self.study_id}#{self.number}"


Line = Annotated[Union[StudyEntry, TrialEntry], Field(discriminator="kind")]


def rank_normalise(scores: list[float | None], direction: Direction) -> list[float | None]:
    """Rank-normalised scores in [0, 1] (1 = best); `None` (failed) stays `None`."""
    idx = [i for i, s in enumerate(scores) if s is not None and math.isfinite(s)]
    out: list[float | None] = [None] * len(scores)
    if not idx:
        return out
    if len(idx) == 1:
        out[idx[0]] = 1.0
        return out
    sign = 1.0 if direction == "maximize" else -1.0
    ordered = sorted(idx, key=lambda i: sign * float(scores[i]))  # type: ignore[arg-type]
    pos = 0
    while pos < len(ordered):
        end = pos
        while end + 1 < len(ordered) and scores[ordered[end + 1]] == scores[ordered[pos]]:
            end += 1
        mean_rank = (pos + end) / 2 / (len(ordered) - 1)
        for j in range(pos, end + 1):
            out[ordered[j]] = round(mean_rank, 6)
        pos = end + 1
    return out


def summarise(study: StudyEntry, trials: list[TrialEntry], n_top: int = 5) -> StudyEntry:
    """`study` with best config/score, top configs and trial count taken from `trials`."""
    done = [t for t in trials if t.status == "complete" and t.score is not None]
    sign = 1.0 if study.direction == "maximize" else -1.0
    done.sort(key=lambda t: sign * float(t.score), reverse=True)  # type: ignore[arg-type]
    top: list[dict[str, Any]] = []
    for t in done:
        if t.config not in top:
            top.append(t.config)
        if len(top) >= n_top:
            break
    return study.model_copy(update={
        "best_config": done[0].config if done else None,
        "best_score": float(done[0].score) if done else None,  # type: ignore[arg-type]
        "top_configs": top,
        "n_trials": len(trials),
    })


def with_ranks(trials: list[TrialEntry], direction: Direction) -> list[TrialEntry]:
    """The trials with `rank` recomputed among themselves."""
    ranks = rank_normalise([t.score if t.status == "complete" else None for t in trials], direction)
    return [t.model_copy(update={"rank": r}) for t, r in zip(trials, ranks, strict=False)]


def dumps(value: Any) -> str:
    """Compact JSON for chromadb metadata (which holds scalars only)."""
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False, default=_plain)
    except ValueError as e:
        raise MemoryStoreError(f"cannot store {value!r} in memory: {e}") from e


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)
