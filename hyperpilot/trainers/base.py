"""The `Trainer` extension point.

Lifecycle: a job (`core.executor.Job`, run by `trainers.run.run_job` wherever the
executor puts it) looks a trainer up by model name (`get_trainer`) and calls
`fit(config, X, y, task)` once per fold and once for the final refit. `y` holds class
codes 0..k-1 for classification (the coordinator encodes labels), values for regression;
`config` has already been validated against `trainer.card.space`. `fit` returns a fitted
estimator with `predict` (class codes or values) and, where the model has them,
`predict_proba` / `decision_function`. A trainer never scores itself: the coordinator
computes every metric from the predictions (`core.scoring`). A trainer raises on
failure; the trial is then recorded as failed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd

from hyperpilot.cards.model import ModelCard, get_model_card, register_card
from hyperpilot.errors import TaskError
from hyperpilot.task import Task


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
    """Fits configs of one model (see the module docstring for the lifecycle)."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Any:
        """Fit `config` on (X, y); returns an estimator with `predict` (and `predict_proba` /
        `decision_function` where the model has them)."""


_REGISTRY: dict[str, Trainer] = {}


def register(trainer: Trainer) -> Trainer:
    """Make `trainer` available by its card's name (and its card by `get_model_card`)."""
    _REGISTRY[trainer.name] = trainer
    register_card(trainer.card)
    return trainer


def get_trainer(name: str) -> Trainer:
    if name not in _REGISTRY:
        get_model_card(name)  # raises the clear "unknown model" error
        raise TaskError(f"model card '{name}' has no trainer installed")
    return _REGISTRY[name]


def trainers() -> dict[str, Trainer]:
    return dict(_REGISTRY)
