"""`ModelCard`: the priors for one trainer, bundled as YAML package data in `cards/models/`.

A card names the hyperparameters (with descriptions), the default search space, a
known-good default config, fixed constructor arguments and plain-language advice. Cards go
into LLM prompts and key the trial memory."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hyperpilot.errors import SpaceError, TaskError
from hyperpilot.metrics import TaskType
from hyperpilot.space import SearchSpace


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    family: str = Field(description="e.g. tree-ensemble, linear, kernel, neighbours, neural-net")
    aliases: list[str] = Field(default_factory=list, description="other names a request may use, lower case (e.g. rf, gbm)")
    description: str
    task_types: list[TaskType]
    space: SearchSpace
    default: dict[str, Any] = Field(description="a known-good config inside `space`")
    fixed: dict[str, Any] = Field(default_factory=dict, description="constructor args never tuned")
    notes: str = ""
    pruner: Literal["hyperband", "successive_halving", "median"] | None = Field(
        None, description="the pruner for a model that reports after every epoch (used when the user gives none)")

    @model_validator(mode="before")
    @classmethod
    def _space_from_dict(cls, data: Any) -> Any:
        space = data.get("space") if isinstance(data, dict) else None
        # the YAML form {name: spec}; the JSON dump of a card has {"params": [...]} instead
        if isinstance(space, dict) and not isinstance(space.get("params"), list):
            data = {**data, "space": SearchSpace.from_dict(space)}
        return data

    @model_validator(mode="after")
    def _default_fits(self) -> ModelCard:
        try:
            self.space.validate(self.default, fill=False)
        except SpaceError as e:
            raise SpaceError(f"model card '{self.name}': default config does not fit its space: {e}") from e
        return self

    def default_config(self) -> dict[str, Any]:
        return self.space.validate(self.default)

    def to_text(self) -> str:
        """The card as prompt text."""
        lines = [f"Model: {self.title} ({self.name}, {self.family})", self.description.strip(), "Hyperparameters:"]
        for p in self.space.params:
            rng = f"one of {p.choices}" if p.type == "categorical" else f"[{p.low}, {p.high}]{' log' if p.log else ''}"
            lines.append(f"- {p.name} ({p.type}, {rng}, default {self.default.get(p.name)!r}): {p.description}")
        if self.notes:
            lines += ["Advice:", self.notes.strip()]
        return "\n".join(lines)


@cache
def model_cards() -> dict[str, ModelCard]:
    """Every bundled card, by name."""
    folder = resources.files("hyperpilot.cards") / "models"
    cards = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            card = ModelCard.model_validate(yaml.safe_load(entry.read_text(encoding="utf-8")))
            cards[card.name] = card
    return cards


_EXTRA: dict[str, ModelCard] = {}


def register_card(card: ModelCard) -> None:
    """Add `card` (done by `hyperpilot.trainers.register`, so a user's own trainer can be tuned
    by name); a card of a bundled name replaces the bundled one, until that is registered again."""
    if model_cards().get(card.name) is card:
        _EXTRA.pop(card.name, None)
    else:
        _EXTRA[card.name] = card


def get_model_card(name: str, task_type: TaskType | None = None) -> ModelCard:
    """The card called `name`: a bundled one, or one added with `register_card`."""
    cards = {**model_cards(), **_EXTRA}
    if name not in cards:
        raise TaskError(f"unknown model '{name}'; `hyperpilot models` lists them: {', '.join(cards)}")
    card = cards[name]
    if task_type is not None and task_type not in card.task_types:
        fits = [c.name for c in cards.values() if task_type in c.task_types]
        raise TaskError(f"model '{name}' does not do {task_type}; use one of {', '.join(fits)}")
    return card
