"""Metrics: a name, a direction, the task types it applies to, the scikit-learn scorer
behind it and the common names a user may type (`get_metric("R²")` is r2). Values are always
reported in their natural sign (log_loss and rmse positive). Precision, recall and F1 are of
the positive class (the second in sorted order) for a binary task, macro averages for a
multiclass one."""

from __future__ import annotations

import difflib
import re
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
    aliases: tuple[str, ...] = ()

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
        Metric("accuracy", "maximize", CLASSIFICATION, "accuracy", aliases=("acc", "classification accuracy")),
        Metric("balanced_accuracy", "maximize", CLASSIFICATION, "balanced_accuracy", aliases=("balanced acc",)),
        Metric("f1", "maximize", CLASSIFICATION, "f1", "f1_macro",
               aliases=("f1 score", "f1-score", "f score", "f-score", "f measure", "f-measure", "f1 macro", "macro f1")),
        Metric("precision", "maximize", CLASSIFICATION, "precision", "precision_macro",
               aliases=("precision score", "positive predictive value", "ppv")),
        Metric("recall", "maximize", CLASSIFICATION, "recall", "recall_macro",
               aliases=("recall score", "sensitivity", "true positive rate", "tpr", "hit rate")),
        Metric("roc_auc", "maximize", CLASSIFICATION, "roc_auc", "roc_auc_ovr",
               aliases=("auc", "roc", "auroc", "roc auc", "auc roc", "area under the roc curve", "area under the curve")),
        Metric("log_loss", "minimize", CLASSIFICATION, "neg_log_loss",
               aliases=("logloss", "cross entropy", "cross-entropy", "negative log likelihood")),
        Metric("rmse", "minimize", ("regression",), "neg_root_mean_squared_error",
               aliases=("root mean squared error", "root mean square error", "root-mean-square error")),
        Metric("mse", "minimize", ("regression",), "neg_mean_squared_error", aliases=("mean squared error", "mean square error")),
        Metric("mae", "minimize", ("regression",), "neg_mean_absolute_error", aliases=("mean absolute error",)),
        Metric("r2", "maximize", ("regression",), "r2",
               aliases=("r²", "r^2", "r squared", "r-squared", "coefficient of determination")),
    ]
}
DEFAULT_METRIC: dict[TaskType, str] = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}


def get_metric(name: str, task_type: TaskType | None = None) -> Metric:
    """The metric called `name` (or one of its common names), checked against `task_type` when given."""
    metric = _BY_NAME.get(metric_key(name))
    if metric is None:
        close = difflib.get_close_matches(metric_key(name), list(_BY_NAME), n=1, cutoff=0.8)
        hint = f"did you mean {_BY_NAME[close[0]].name}? " if close else ""
        raise TaskError(f"unknown metric '{name}'; {hint}choose one of {', '.join(METRICS)}")
    if task_type is not None and task_type not in metric.task_types:
        fits = [m for m in METRICS.values() if task_type in m.task_types]
        raise TaskError(
            f"metric '{metric.name}' does not apply to a {task_type} task; "
            f"use one of {', '.join(m.name for m in fits)}"
        )
    return metric


def metric_key(name: str) -> str:
    """`name` as looked up: lower case, '²' as 2, runs of spaces, '-' and '_' as one '_'."""
    return re.sub(r"[\s_-]+", "_", name.strip().lower().replace("²", "2"))


_BY_NAME: dict[str, Metric] = {metric_key(a): m for m in METRICS.values() for a in (m.name, *m.aliases)}
