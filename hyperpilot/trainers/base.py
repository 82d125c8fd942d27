"""The `Trainer` extension point.

Lifecycle: the assistant looks a trainer up by model name (`get_trainer`), calls
`evaluate(config, X, y, task)` once per trial — k-fold cross-validation on the training
split, returning an `Evaluation` — and `fit(config, X, y, task)` once, on the best config,
to get the final `FittedModel`. `config` has already been validated against
`trainer.card.space`. A trainer raises on failure; the caller records the trial as failed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hyperpilot.cards.model import ModelCard
from hyperpilot.errors import TaskError
from hyperpilot.task import Task


@dataclass(frozen=True)
class Evaluation:
    """What one trial measured: the CV mean of the task's metric and the details."""

    value: float
    fold_values: list[float]
    fit_seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


class FittedModel:
    """A fitted pipeline plus the class labels it was trained to predict (labels are
    encoded as 0..k-1 for training so every metric works with string labels)."""

    def __init__(self, pipeline: Any, classes: list[Any] | None, features: list[str]) -> None:
        self.pipeline = pipeline
        self.classes = classes
        self.features = features

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        pred = self.pipeline.predict(X[self.features])
        if self.classes is None:
            return np.asarray(pred)
        return np.asarray(self.classes)[np.asarray(pred, dtype=int)]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns in the order of `classes`."""
        if self.classes is None or not hasattr(self.pipeline, "predict_proba"):
            raise TaskError(
                "this model gives no probabilities (a regressor, or an SVM tuned for a label metric); "
                "tune with metric log_loss to get a calibrated one"
            )
        return np.asarray(self.pipeline.predict_proba(X[self.features]))


class Trainer(ABC):
    """Evaluates configs of one model by cross-validation and fits the final model."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def evaluate(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Evaluation:
        """Cross-validate `config` on (X, y) with `task.cv_folds` folds and `task.metric`."""

    @abstractmethod
    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> FittedModel:
        """Fit `config` on all of (X, y)."""

    @abstractmethod
    def score(self, model: FittedModel, X: pd.DataFrame, y: pd.Series, task: Task) -> float:
        """`task.metric` of a fitted model on held-out data, in the metric's natural sign."""


_REGISTRY: dict[str, Trainer] = {}


def register(trainer: Trainer) -> Trainer:
    """Make `trainer` available by its card's name."""
    _REGISTRY[trainer.name] = trainer
    return trainer


def get_trainer(name: str) -> Trainer:
    from hyperpilot.cards.model import get_model_card

    if name not in _REGISTRY:
        get_model_card(name)  # raises the clear "unknown model" error
        raise TaskError(f"model card '{name}' has no trainer installed")
    return _REGISTRY[name]


def trainers() -> dict[str, Trainer]:
    return dict(_REGISTRY)
