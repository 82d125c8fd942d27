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
from sklearn.base import BaseEstimator
from sklearn.utils import ClassifierTags, RegressorTags, Tags

from hyperpilot.cards.model import ModelCard, get_model_card, register_card
from hyperpilot.errors import DataError, TaskError
from hyperpilot.task import Task


class FittedModel(BaseEstimator):
    """The model a solve saves (`model.joblib`): a fitted pipeline, the class labels it
    predicts (encoded 0..k-1 for training, so every metric works with string labels) and
    the feature columns it reads.

    A fitted scikit-learn estimator: a classifier when it has classes (`is_classifier`,
    `classes_`, `predict_proba`, `score` = accuracy), else a regressor (`score` = R²).
    `X` is a DataFrame holding those columns (others are ignored) or an array with one
    column per feature, in order. It is not refitted by `fit` (a solve makes it); models
    saved before it became an estimator load and work the same."""

    def __init__(self, pipeline: Any, classes: list[Any] | None, features: list[str]) -> None:
        self.pipeline = pipeline
        self.classes = classes
        self.features = features

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        if self.classes is not None:
            tags.estimator_type, tags.classifier_tags, tags.regressor_tags = "classifier", ClassifierTags(), None
        else:
            tags.estimator_type, tags.classifier_tags, tags.regressor_tags = "regressor", None, RegressorTags()
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("a regressor has no classes_")
        return np.asarray(self.classes)

    @property
    def n_features_in_(self) -> int:
        return len(self.features)

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(self.features, dtype=object)

    def predict(self, X: Any) -> np.ndarray:
        pred = self.pipeline.predict(self._columns(X))
        if self.classes is None:
            return np.asarray(pred)
        return np.asarray(self.classes)[np.asarray(pred, dtype=int)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_`."""
        if self.classes is None or not hasattr(self.pipeline, "predict_proba"):
            raise TaskError(
                "this model gives no probabilities (a regressor, or an SVM tuned for a label metric); "
                "tune with metric log_loss to get a calibrated one"
            )
        return np.asarray(self.pipeline.predict_proba(self._columns(X)))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy (classifier) or R² (regressor) of the predictions of X against y."""
        from sklearn.metrics import accuracy_score, r2_score

        metric = r2_score if self.classes is None else accuracy_score
        return float(metric(y, self.predict(X), sample_weight=sample_weight))

    def _columns(self, X: Any) -> pd.DataFrame:
        """X as the DataFrame of the model's feature columns; one `DataError` line otherwise."""
        if isinstance(X, pd.DataFrame):
            missing = [f for f in self.features if f not in X.columns]
            if missing:
                raise DataError(f"X lacks column(s) {', '.join(missing[:10])} that the model was trained on")
            return X[self.features]
        values = np.asarray(X)
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise DataError(f"X has shape {values.shape}; the model reads {len(self.features)} feature(s) per row: "
                            f"{', '.join(self.features[:10])}{' …' if len(self.features) > 10 else ''}")
        return pd.DataFrame(values, columns=self.features)


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

    def check(self, X: pd.DataFrame, task: Task) -> dict[str, Any]:
        """Raise `DataError` (one line) when this model cannot use the features `X` at all
        (e.g. pixel columns that make no image); called once before the first trial. Returns
        what the dataset card should know of how this model reads the data: `text_column`,
        `image_shape` (keywords of `DatasetCard.profile`), or nothing."""
        return {}  # most models take any table


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
