"""Agent tools: list the model cards, read one (the same cards `hyperpilot models` lists)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from hyperpilot.errors import TaskError
from hyperpilot.tools.runtime import Runtime, safe


class ListModelsArgs(BaseModel):
    task_type: Literal["binary", "multiclass", "regression"] | None = Field(
        None, description="only the models for this kind of task")


class ModelCardArgs(BaseModel):
    name: str = Field(description="a model card name or a common name (random forest, svm, xgb …)")


@safe
def list_models(args: ListModelsArgs, runtime: Runtime) -> dict[str, Any]:
    """Every model card: name, family, task types, tuned hyperparameters."""
    from hyperpilot.cards import model_cards

    cards = [c for c in model_cards().values() if args.task_type is None or args.task_type in c.task_types]
    return {"models": [{"name": c.name, "title": c.title, "family": c.family, "tasks": list(c.task_types),
                        "hyperparameters": list(c.space.names)} for c in cards]}


@safe
def model_card(args: ModelCardArgs, runtime: Runtime) -> dict[str, Any]:
    """One model card: description, search space, default config, advice."""
    from hyperpilot.agent.request_rules import OTHER_MODELS, model_aliases, unknown_name
    from hyperpilot.cards import get_model_card, model_cards

    name = args.name.strip().lower()
    if name not in model_cards():
        found = [n for n, aliases in model_aliases().items() if name in aliases or name.replace(" ", "_") == n]
        if not found:
            raise TaskError(unknown_name("model", name, OTHER_MODELS, model_aliases()))
        name = found[0]
    card = get_model_card(name)
    return {"name": card.name, "card": json.loads(card.model_dump_json()), "text": card.to_text()}
