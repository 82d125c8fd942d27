"""`DatasetCard`: a profile of the data (shape, column types, missing values,
cardinalities, class balance or target statistics, simple meta-features) that renders to
text for prompts and gives the numbers that key the memory."""

from __future__ import annotations

import math

import numpy as np
from pandas.api import types as ptypes
from pydantic import BaseModel, ConfigDict

from hyperpilot.data import Dataset
from hyperpilot.metrics import TaskType


class ColumnProfile(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    kind: str  # numeric | categorical | boolean | datetime
    missing: float
    n_unique: int


class DatasetCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    task_type: TaskType
    target: str
    n_rows: int
    n_features: int
    n_numeric: int
    n_categorical: int
    missing_fraction: float
    columns: list[ColumnProfile]
    class_balance: dict[str, float] | None = None
    target_stats: dict[str, float] | None = None
    meta_features: dict[str, float]
    dropped: dict[str, str] = {}  # columns no model saw, and why (`data.screen`)
    leaks: dict[str, float] = {}  # features that alone predict the target almost perfectly, with that score

    @classmethod
    def profile(cls, data: Dataset, task_type: TaskType) -> DatasetCard:
        X, y = data.X, data.y
        columns = [
            ColumnProfile(name=str(c), kind=_kind(X[c]), missing=round(float(X[c].isna().mean()), 4), n_unique=int(X[c].nunique()))
            for c in X.columns
        ]
        n_numeric = sum(c.kind == "numeric" for c in columns)
        missing = float(X.isna().to_numpy().mean())
        meta = {
            "log_rows": math.log10(len(X)),
            "log_features": math.log10(X.shape[1]),
            "features_per_row": X.shape[1] / len(X),
            "numeric_share": n_numeric / X.shape[1],
            "missing_fraction": missing,
        }
        balance = stats = None
        if task_type == "regression":
            yv = y.astype(float)
            stats = {k: round(float(v), 6) for k, v in
                     {"mean": yv.mean(), "std": yv.std(), "min": yv.min(), "max": yv.max(), "skew": yv.skew()}.items()}
            meta["target_skew"] = float(np.nan_to_num(yv.skew()))
        else:
            freq = y.value_counts(normalize=True)
            balance = {str(k): round(float(v), 4) for k, v in freq.items()}
            meta["n_classes"] = float(len(freq))
            meta["class_entropy"] = float(-(freq * np.log2(freq)).sum() / max(math.log2(len(freq)), 1e-12))
            meta["imbalance_ratio"] = float(freq.max() / freq.min())
        return cls(
            name=data.name, task_type=task_type, target=data.target, n_rows=len(X), n_features=X.shape[1],
            n_numeric=n_numeric, n_categorical=X.shape[1] - n_numeric, missing_fraction=round(missing, 4),
            columns=columns, class_balance=balance, target_stats=stats,
            meta_features={k: round(v, 6) for k, v in meta.items()},
            dropped=dict(data.dropped), leaks=dict(data.leaks),
        )

    def to_text(self, max_columns: int = 15) -> str:
        """The card as prompt text."""
        lines = [
            f"Dataset: {self.name} — {self.task_type} task, target '{self.target}'",
            f"Rows: {self.n_rows}; features: {self.n_features} ({self.n_numeric} numeric, "
            f"{self.n_categorical} categorical); missing values: {self.missing_fraction:.1%}",
        ]
        if self.class_balance is not None:
            shares = ", ".join(f"{k}: {v:.1%}" for k, v in list(self.class_balance.items())[:10])
            lines.append(f"Classes ({len(self.class_balance)}): {shares}")
        if self.target_stats is not None:
            lines.append("Target: " + ", ".join(f"{k} {v:.4g}" for k, v in self.target_stats.items()))
        shown = ", ".join(f"{c.name} ({c.kind}{f', {c.missing:.0%} missing' if c.missing else ''})" for c in self.columns[:max_columns])
        more = f" … and {len(self.columns) - max_columns} more" if len(self.columns) > max_columns else ""
        lines.append(f"Columns: {shown}{more}")
        if self.dropped:
            lines.append("Dropped: " + "; ".join(f"{c} ({why})" for c, why in self.dropped.items()))
        if self.leaks:
            lines.append("Suspected leaks (one column alone predicts the target): " + ", ".join(self.leaks))
        return "\n".join(lines)


def _kind(col: object) -> str:
    if ptypes.is_bool_dtype(col):
        return "boolean"
    if ptypes.is_numeric_dtype(col):
        return "numeric"
    if ptypes.is_datetime64_any_dtype(col):
        return "datetime"
    return "categorical"
