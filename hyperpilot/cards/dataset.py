"""`DatasetCard`: a profile of the data (shape, column types, missing values,
cardinalities, class balance or target statistics, simple meta-features) that renders to
text for prompts and gives the numbers that key the memory."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import BaseModel, ConfigDict

from hyperpilot.data import Dataset
from hyperpilot.metrics import TaskType


class ColumnProfile(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    kind: str  # numeric | categorical | boolean | datetime | text
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
    text: dict[str, float] | None = None  # length statistics of the text column a text model reads
    text_column: str | None = None
    image_shape: list[int] | None = None  # [channels, height, width] when an image model reads the features

    @classmethod
    def profile(cls, data: Dataset, task_type: TaskType, text_column: str | None = None,
                image_shape: tuple[int, ...] | None = None) -> DatasetCard:
        """The card of `data`; `text_column` adds the text's length statistics and
        `image_shape` the image size (both also become meta-features, so the memory finds
        text tasks for text tasks and image tasks for image tasks)."""
        X, y = data.X, data.y
        columns = [
            ColumnProfile(name=str(c), kind="text" if str(c) == text_column else _kind(X[c]),
                          missing=round(float(X[c].isna().mean()), 4), n_unique=int(X[c].nunique()))
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
        text = None
        if text_column is not None and text_column in X.columns:
            text = _text_stats(X[text_column])
            meta["log_text_words"] = math.log10(1 + text["median_words"])
        if image_shape is not None:
            meta["log_image_pixels"] = math.log10(max(1, math.prod(image_shape)))
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
            dropped=dict(data.dropped), leaks=dict(data.leaks), text=text,
            text_column=text_column if text is not None else None,
            image_shape=list(image_shape) if image_shape is not None else None,
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
        if self.text is not None:
            lines.append(f"Text column '{self.text_column}': median {self.text['median_words']:.0f} words "
                         f"(95% ≤ {self.text['p95_words']:.0f}, longest {self.text['max_words']:.0f}), "
                         f"mean {self.text['mean_chars']:.0f} characters")
        if self.image_shape is not None:
            lines.append("Images: " + "×".join(str(v) for v in self.image_shape) + " (channels × height × width)")
        shown = ", ".join(f"{c.name} ({c.kind}{f', {c.missing:.0%} missing' if c.missing else ''})" for c in self.columns[:max_columns])
        more = f" … and {len(self.columns) - max_columns} more" if len(self.columns) > max_columns else ""
        lines.append(f"Columns: {shown}{more}")
        if self.dropped:
            lines.append("Dropped: " + "; ".join(f"{c} ({why})" for c, why in self.dropped.items()))
        if self.leaks:
            lines.append("Suspected leaks (one column alone predicts the target): " + ", ".join(self.leaks))
        return "\n".join(lines)


def _text_stats(col: pd.Series) -> dict[str, float]:
    """Length statistics of a text column, in words and characters."""
    texts = col.fillna("").astype(str)
    words = texts.str.split().str.len().to_numpy(dtype=float)
    return {"mean_chars": round(float(texts.str.len().mean()), 2), "median_words": float(np.median(words)),
            "p95_words": float(np.percentile(words, 95)), "max_words": float(words.max())}


def _kind(col: object) -> str:
    if ptypes.is_bool_dtype(col):
        return "boolean"
    if ptypes.is_numeric_dtype(col):
        return "numeric"
    if ptypes.is_datetime64_any_dtype(col):
        return "datetime"
    return "categorical"
