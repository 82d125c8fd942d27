"""From a new task to what the memory offers it: the query, warm-start configs, and
in-context examples for the LLM planner.

The defaults (`K`, `MIX`) were chosen by measurement (docs/benchmarks.md, "Memory")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hyperpilot.cards import DatasetCard
from hyperpilot.cards.model import ModelCard, get_model_card
from hyperpilot.errors import HyperpilotError
from hyperpilot.memory.similarity import Mix, config_key, map_config
from hyperpilot.memory.store import Memory, Neighbour, Query
from hyperpilot.task import Task

K = 5
MIX = Mix(text=0.5, meta=0.5, model=0.25)


def study_text(card: DatasetCard, task_type: str, metric: str) -> str:
    """The text that is embedded for a study and for a query: the dataset card and what
    was optimised (the model is compared separately, not through the text)."""
    return f"{card.to_text()}\nTask: {task_type}; metric {metric}"


def query_for(task: Task, card: DatasetCard) -> Query:
    return Query(text=study_text(card, str(task.task_type), str(task.metric)), meta_features=dict(card.meta_features),
                 task_type=str(task.task_type))


@dataclass(frozen=True)
class WarmStart:
    """A remembered config mapped into a model of the new task."""

    model: str
    config: dict[str, Any]
    neighbour: Neighbour


def warm_configs(neighbours: list[Neighbour], cards: list[ModelCard], n: int, per_study: int = 1,
                 skip: Iterable[tuple[str, dict[str, Any]]] = ()) -> list[WarmStart]:
    """Up to `n` distinct configs: the best `per_study` configs of each neighbour, best
    neighbour first, mapped into the space of the model it serves; configs in `skip`
    (e.g. the card defaults, already queued) are left out."""
    by_name = {c.name: c for c in cards}
    seen = {(m, config_key(c)) for m, c in skip}
    out: list[WarmStart] = []
    for nb in neighbours:
        card = by_name.get(nb.target_model)
        if card is None:
            continue
        for config in (nb.study.top_configs or [nb.study.best_config or {}])[:per_study]:
            mapped = map_config(config, card.space)
            if mapped is None or (card.name, config_key(mapped)) in seen:
                continue
            seen.add((card.name, config_key(mapped)))
            out.append(WarmStart(card.name, mapped, nb))
            if len(out) >= n:
                return out
    return out


@dataclass(frozen=True)
class MemoryExample:
    """One past study as an in-context example for the LLM planner."""

    study_id: str
    dataset: str
    model: str
    metric: str
    direction: str
    best_score: float | None
    config: dict[str, Any]
    similarity: float
    card_text: str

    def to_text(self) -> str:
        first = self.card_text.splitlines()[:2]
        score = "n/a" if self.best_score is None else f"{self.best_score:.4g}"
        return (f"- {self.dataset} ({'; '.join(first)[:200]}): {self.model} best {self.metric} {score} "
                f"({self.direction}) with {self.config} [similarity {self.similarity:.2f}]")


def in_context_examples(
    task: Task, card: DatasetCard, memory: Memory | None = None, k: int = K, *,
    exclude_datasets: Iterable[str] = (), exclude_ids: Iterable[str] = (), mix: Mix | None = None,
) -> list[MemoryExample]:
    """The `k` most similar past studies for `task` (resolved: task type, metric and models
    set) on data described by `card`, each with its best config mapped into the space of
    the task's model it serves. For the LLM planner's prompts; returns [] when the memory
    is empty, switched off (`memory=None` means the default memory) or unusable — it
    never raises for a memory problem."""
    memory = memory if memory is not None else Memory()
    try:
        cards = [get_model_card(m) for m in task.models]
        found = memory.similar(query_for(task, card), cards, k, mix=mix or MIX, exclude_datasets=exclude_datasets,
                               exclude_ids=exclude_ids)
    except HyperpilotError:
        return []
    return examples_of(warm_configs(found, cards, n=k))


def examples_of(warm: list[WarmStart]) -> list[MemoryExample]:
    """Warm-start configs as in-context examples (e.g. `MemoryProposer.warm`)."""
    out = []
    for ws in warm:
        s = ws.neighbour.study
        out.append(MemoryExample(s.id, s.dataset, ws.model, s.metric, s.direction, s.best_score, ws.config,
                                 round(ws.neighbour.score, 4), s.card_text))
    return out


def format_examples(examples: list[MemoryExample]) -> str:
    """The examples as prompt text (empty string when there are none)."""
    if not examples:
        return ""
    return "Similar past studies (from the trial memory):\n" + "\n".join(e.to_text() for e in examples)
