"""The benchmark's model cards: hyperpilot's cards as they were when the rows of
docs/benchmarks.md were run (Bayesmark's search spaces and defaults), kept here so that the
bundled cards can grow product-sized spaces while every benchmark cell still reproduces.

`bench_card(name)` is one of them. Inside `with benchmark_cards():` hyperpilot itself uses
them in place of its bundled cards — `get_model_card` and the trainers, so the `Assistant`,
its card defaults, memory, LLM prompts and the trainers' fixed arguments — and the bundled
ones are back afterwards. Every harness path that runs hyperpilot enters it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import yaml

from hyperpilot.cards.model import ModelCard

HERE = Path(__file__).parent


@cache
def bench_cards() -> dict[str, ModelCard]:
    """Every benchmark card, by name (one YAML file each in this folder)."""
    cards = [ModelCard.model_validate(yaml.safe_load(p.read_text(encoding="utf-8"))) for p in sorted(HERE.glob("*.yaml"))]
    return {c.name: c for c in cards}


def bench_card(name: str) -> ModelCard:
    if name not in bench_cards():
        raise KeyError(f"no benchmark card '{name}' in {HERE}; there are {', '.join(bench_cards())}")
    return bench_cards()[name]


@contextmanager
def benchmark_cards() -> Iterator[None]:
    """hyperpilot's cards and scikit-learn trainers of the benchmark's models are the
    benchmark's while inside (re-entrant; the previous ones are restored on the way out)."""
    from hyperpilot.trainers import get_trainer, register
    from hyperpilot.trainers.sklearn import SklearnTrainer

    saved = [get_trainer(name) for name in bench_cards()]
    for card in bench_cards().values():
        register(SklearnTrainer(card))
    try:
        yield
    finally:
        for trainer in saved:
            register(trainer)
