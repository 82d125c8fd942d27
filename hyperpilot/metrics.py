"""Metrics: a name, a direction, the task types it applies to and the scikit-learn scorer
behind it. Values are always reported in their natural sign (log_loss and rmse positive)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hyperpilot.errors import TaskError

TaskType = Literal["binary", "multiclass", "regression"]
Direction = Literal["maximize", "minimize"]
CLASSIFICATION: tuple[TaskType, ...] = ("binary", "multiclass")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    task_types: tuple[TaskType, ...]
    scorer: str  # scikit-learn scorer name for binary/regression
    multiclass_scorer: str | None = None

    def scorer_for(self, task_type: TaskType) -> str:
        if task_type == "multiclass" and self.multiclass_scorer:
            return self.multiclass_scorer
        return self.scorer

    @property
    def sign(self) -> int:
        """-1 where scikit-learn's scorer is negated (neg_log_loss, …)."""
        return -1 if self.scorer.startswith("neg_") else 1

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", "maximize", CLASSIFICATION, "accuracy"),
        Metric("balanced_accuracy", "maximize", CLASSIFICATION, "balanced_accuracy"),
        Metric("f1", "maximize", CLASSIFICATION, "f1", "f1_macro"),
        Metric("roc_auc", "maximize", CLASSIFICATION, "roc_auc", "roc_auc_ovr"),
        Metric("log_loss", "minimize", CLASSIFICATION, "neg_log_loss"),
        Metric("rmse", "minimize", ("regression",), "neg_root_mean_squared_error"),
        Metric("mse", "minimize", ("regression",), "neg_mean_squared_error"),
        Metric("mae", "minimize", ("regression",), "neg_mean_absolute_error"),
        Metric("r2", "maximize", ("regression",), "r2"),
    ]
}
DEFAULT_METRIC: dict[TaskType, str] = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}


def get_metric(name: str, task_type: TaskType | None = None) -> Metric:
    """The metric called `name`, checked against `task_type` when given."""
    metric = METRICS.get(name.lower().replace("-", "_"))
    if metric is None:
        raise TaskError(f"unknown metric '{name}'; choose one of {', '.join(METRICS)}")
    if task_type is not None and task_type not in metric.task_types:
        fits = [m for m in METRICS.values() if task_type in m.task_types]
        raise TaskError(
            f"metric '{metric.name}' does not apply to a {task_type} task; "
            f"use one of {', '.join(m.name for m in fits)}"
        )
    return metric
