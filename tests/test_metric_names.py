"""Precision and recall (scored by the coordinator, against scikit-learn's own functions) and
metrics by their common names."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from hyperpilot.core.scoring import checked_value, score
from hyperpilot.errors import TaskError, TrialError
from hyperpilot.metrics import METRICS, get_metric
from hyperpilot.task import Task

rng = np.random.default_rng(0)


@pytest.mark.parametrize("name, fn", [("precision", skm.precision_score), ("recall", skm.recall_score)])
def test_binary_is_of_the_positive_class(name: str, fn: object) -> None:
    y, pred = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert score(name, "binary", y, {"predict": pred}) == pytest.approx(fn(y, pred, pos_label=1))  # type: ignore[operator]
    assert score(name, "binary", y, {"predict": pred}) != pytest.approx(fn(y, pred, pos_label=0))  # type: ignore[operator]


@pytest.mark.parametrize("name, fn", [("precision", skm.precision_score), ("recall", skm.recall_score)])
def test_multiclass_is_the_macro_average(name: str, fn: object) -> None:
    y, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    assert score(name, "multiclass", y, {"predict": pred}, n_classes=4) == pytest.approx(fn(y, pred, average="macro"))  # type: ignore[operator]


def test_no_predicted_positive_gives_zero_precision_not_an_error() -> None:
    assert score("precision", "binary", np.array([0, 1, 1, 0]), {"predict": np.zeros(4, dtype=int)}) == 0.0


def test_range_and_shape_checks_apply() -> None:
    with pytest.raises(TrialError, match="outside its range"):
        checked_value("recall", 1.5)
    with pytest.raises(TrialError, match="class codes"):
        score("precision", "binary", np.array([0, 1]), {"predict": np.array([0, 2])}, n_classes=2)


@pytest.mark.parametrize("alias, name", [("AUC", "roc_auc"), ("ROC AUC", "roc_auc"), ("R²", "r2"), ("r-squared", "r2"),
                                         ("log loss", "log_loss"), ("Balanced Accuracy", "balanced_accuracy"),
                                         ("F1-score", "f1"), ("sensitivity", "recall"), ("RMSE", "rmse")])
def test_common_names(alias: str, name: str) -> None:
    assert get_metric(alias).name == name and Task(data="x.csv", metric=alias).metric == name


def test_an_unknown_metric_says_what_is_close_and_lists_all() -> None:
    with pytest.raises(TaskError, match="unknown metric 'recal'; did you mean recall\\?") as info:
        get_metric("recal")
    assert all(m in str(info.value) for m in METRICS)


def test_aliases_are_unambiguous() -> None:
    seen: dict[str, str] = {}
    for m in METRICS.values():
        for alias in (m.name, *m.aliases):
            assert seen.setdefault(alias.lower(), m.name) == m.name
