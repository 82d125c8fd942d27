"""Trusted scoring: the coordinator computes every metric from predictions.

A trial (a trainer in the sandbox, maybe LLM-written) never scores itself: it returns
predictions for rows whose labels it never saw, and `score` computes the metric here,
after checking the predictions' shape and range. Values are in the metric's natural sign
(log_loss and rmse positive), as scikit-learn's scorers compute them.

`response_for(metric, task_type)` says what a trial must return: `predict` (labels or
values), `proba` (class probabilities, columns 0..k-1) or `decision` (a score per row,
for binary ROC AUC when a model has no probabilities)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from hyperpilot.errors import TrialError
from hyperpilot.metrics import TaskType, get_metric

RESPONSES = ("predict", "proba", "decision")
RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0), "balanced_accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "precision": (0.0, 1.0),
    "recall": (0.0, 1.0), "roc_auc": (0.0, 1.0),
    "log_loss": (0.0, math.inf), "rmse": (0.0, math.inf), "mse": (0.0, math.inf), "mae": (0.0, math.inf),
    "r2": (-math.inf, 1.0),
}


def response_for(metric: str, task_type: TaskType) -> tuple[str, ...]:
    """The predictions a trial returns for `metric`, in order of preference (the first one
    the model has). ROC AUC prefers the decision function, as scikit-learn's scorer does."""
    name = get_metric(metric, task_type).name
    if name == "log_loss" or (name == "roc_auc" and task_type == "multiclass"):
        return ("proba",)
    if name == "roc_auc":
        return ("decision", "proba")
    return ("predict",)


def score(metric: str, task_type: TaskType, y_true: np.ndarray, response: dict[str, Any], n_classes: int | None = None) -> float:
    """`metric` of `response` against `y_true` (class codes 0..k-1, or values); raises
    `TrialError` for predictions of the wrong shape or out of range, or a non-finite score."""
    name = get_metric(metric, task_type).name
    y_true = np.asarray(y_true)
    kind = next((k for k in response_for(name, task_type) if k in response), None)
    if kind is None:
        raise TrialError(f"the trial returned no {' or '.join(response_for(name, task_type))} predictions for {name}")
    pred = _checked(np.asarray(response[kind]), kind, len(y_true), task_type, n_classes)
    if name == "accuracy":
        value = skm.accuracy_score(y_true, pred)
    elif name == "balanced_accuracy":
        value = skm.balanced_accuracy_score(y_true, pred)
    elif name == "f1":
        value = skm.f1_score(y_true, pred, average="binary" if task_type == "binary" else "macro")
    elif name in ("precision", "recall"):  # of the positive class (code 1), or the macro average; 0 when undefined
        fn = skm.precision_score if name == "precision" else skm.recall_score
        value = fn(y_true, pred, average="binary" if task_type == "binary" else "macro", zero_division=0.0)
    elif name == "roc_auc" and task_type == "binary":
        value = skm.roc_auc_score(y_true, pred[:, 1] if pred.ndim == 2 else pred)
    elif name == "roc_auc":
        value = skm.roc_auc_score(y_true, pred, multi_class="ovr", labels=np.arange(pred.shape[1]))
    elif name == "log_loss":
        value = skm.log_loss(y_true, pred, labels=np.arange(pred.shape[1]))
    elif name == "rmse":
        value = skm.root_mean_squared_error(y_true, pred)
    elif name == "mse":
        value = skm.mean_squared_error(y_true, pred)
    elif name == "mae":
        value = skm.mean_absolute_error(y_true, pred)
    else:
        value = skm.r2_score(y_true, pred)
    return checked_value(name, float(value))


def checked_value(metric: str, value: float) -> float:
    """`value` if it is finite and inside `metric`'s range; else a `TrialError`."""
    low, high = RANGES[get_metric(metric).name]
    if not math.isfinite(value) or not low - 1e-9 <= value <= high + 1e-9:
        raise TrialError(f"{metric} of {value!r} is outside its range [{low:g}, {high:g}]; the trial's predictions are rejected")
    return value


def _checked(pred: np.ndarray, kind: str, n: int, task_type: TaskType, n_classes: int | None) -> np.ndarray:
    if pred.shape[:1] != (n,):
        raise TrialError(f"the trial returned {pred.shape[0] if pred.ndim else 0} {kind} rows for {n} validation rows")
    if pred.dtype == object or not np.issubdtype(pred.dtype, np.number):
        raise TrialError(f"the trial's {kind} predictions are not numbers ({pred.dtype})")
    pred = pred.astype(float)
    if not np.all(np.isfinite(pred)):
        raise TrialError(f"the trial's {kind} predictions contain NaN or infinity")
    if kind == "proba":
        if pred.ndim != 2 or (n_classes is not None and pred.shape[1] != n_classes):
            raise TrialError(f"probabilities must have one column per class ({n_classes}), got shape {pred.shape}")
        if pred.min() < -1e-6 or pred.max() > 1 + 1e-6 or not np.allclose(pred.sum(axis=1), 1.0, atol=1e-3):
            raise TrialError("the trial's probabilities are outside [0, 1] or do not sum to 1 per row")
    elif kind == "predict" and task_type != "regression":
        if not np.all(pred == np.round(pred)) or pred.min() < 0 or (n_classes is not None and pred.max() >= n_classes):
            raise TrialError(f"predicted labels must be class codes 0..{(n_classes or 1) - 1}")
        pred = pred.astype(int)
    elif kind == "decision" and pred.ndim != 1:
        raise TrialError("a decision function for binary ROC AUC must give one value per row")
    return pred
