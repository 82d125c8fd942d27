"""How alike two tasks are, and how a remembered config becomes a config of a new space.

A past study's similarity to a new task mixes three signals (weights in `Mix`):
- `text`: cosine similarity of the embedded dataset-card texts (column names, task type,
  shape, class balance read as language);
- `meta`: 1 − a scaled distance between the dataset cards' meta-features;
- `model`: 1 for the same model, else the share of the new model's parameters that the
  old config also sets (only for models whose configs transfer; see `transfer_share`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hyperpilot.cards.model import ModelCard
from hyperpilot.errors import SpaceError
from hyperpilot.space import CategoricalParam, SearchSpace

# A difference of one `scale` in a meta-feature counts as "completely different".
META_SCALES: dict[str, float] = {
    "log_rows": 1.5,
    "log_features": 1.0,
    "features_per_row": 0.2,
    "numeric_share": 0.5,
    "missing_fraction": 0.3,
    "n_classes": 8.0,
    "class_entropy": 0.5,
    "imbalance_ratio": 5.0,
    "target_skew": 2.0,
    "log_text_words": 0.5,  # text tasks (a text column)
    "log_image_pixels": 0.5,  # image tasks
}


@dataclass(frozen=True)
class Mix:
    """Weights of the three similarity signals; they need not sum to 1."""

    text: float = 0.5
    meta: float = 0.5
    model: float = 0.25

    def score(self, text_sim: float, meta_sim: float, model_sim: float) -> float:
        total = self.text + self.meta + self.model
        if total <= 0:
            return 0.0
        return (self.text * text_sim + self.meta * meta_sim + self.model * model_sim) / total


def meta_similarity(a: dict[str, float], b: dict[str, float]) -> float:
    """1 for identical meta-features, 0 for nothing in common (a key one side lacks counts
    as a full difference)."""
    keys = sorted(set(a) | set(b))  # a fixed order: the same float sum in every process
    if not keys:
        return 0.0
    total = 0.0
    for key in keys:
        if key not in a or key not in b:
            total += 1.0
            continue
        scale = META_SCALES.get(key, 1.0)
        total += min(1.0, abs(float(a[key]) - float(b[key])) / scale) ** 2
    return 1.0 - math.sqrt(total / len(keys))


def transfer_share(source_model: str, source_family: str, source_params: list[str], target: ModelCard) -> float:
    """How much of a config of `source_model` carries over to `target`: 1.0 for the same
    model; else the share of `target`'s parameters the source sets, when that share is at
    least 1/2 within a family (ridge → lasso) or 3/4 across (decision_tree → random_forest);
    0.0 when it does not transfer (svm's C is not logistic regression's C)."""
    if source_model == target.name:
        return 1.0
    names = target.space.names
    if not names:
        return 0.0
    share = len(set(source_params) & set(names)) / len(names)
    if source_family and source_family == target.family:
        return share if share >= 0.5 else 0.0
    return share if share >= 0.75 else 0.0


def map_config(config: dict[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """`config` as a config of `space`: unknown parameters dropped, values cast to each
    parameter's type and clipped to its range, categorical values that are not choices
    dropped, missing parameters filled with defaults. `None` when nothing carries over."""
    kept: dict[str, Any] = {}
    for name, value in config.items():
        if name not in space.names:
            continue
        param = space[name]
        try:
            kept[name] = param.cast(value)
        except SpaceError:
            if not isinstance(param, CategoricalParam):
                continue
    if not kept:
        return None
    return space.validate(kept)


def config_key(config: dict[str, Any]) -> str:
    """A key under which near-identical configs (3 significant digits) collide."""
    parts = []
    for k in sorted(config):
        v = config[k]
        if isinstance(v, float):
            v = f"{v:.3g}"
        parts.append(f"{k}={v}")
    return ";".join(parts)
