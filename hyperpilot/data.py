"""Loading a dataset (CSV, Parquet or a scikit-learn built-in) and checking that it can be
used for a task. Every problem is one `DataError` line that says what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pandas.api import types as ptypes

from hyperpilot.errors import DataError
from hyperpilot.metrics import TaskType

if TYPE_CHECKING:
    from hyperpilot.task import Task

SKLEARN_DATASETS = ("iris", "digits", "wine", "breast_cancer", "diabetes")
SKLEARN_PREFIX = "sklearn:"


@dataclass(frozen=True)
class Dataset:
    """Features `X` (a DataFrame, mixed types and missing values allowed) and target `y`."""

    name: str
    X: pd.DataFrame
    y: pd.Series
    target: str


def load_dataset(ref: str, target: str | None = None) -> Dataset:
    """Load `ref` — a CSV/Parquet path or `sklearn:NAME` — and split off `target`."""
    if ref.startswith(SKLEARN_PREFIX):
        frame, name = _load_sklearn(ref[len(SKLEARN_PREFIX):]), ref
        target = target or "target"
    else:
        frame, name = _load_file(Path(ref).expanduser()), Path(ref).stem
    if frame.empty or len(frame.columns) == 0:
        raise DataError(f"'{ref}' has no rows; give a table with at least a header and data rows")
    if target is None:
        raise DataError(
            f"no target column given for '{ref}'; pass --target with one of: {_cols(frame)}"
        )
    if target not in frame.columns:
        raise DataError(f"target column '{target}' is not in '{ref}'; columns are: {_cols(frame)}")
    frame = frame.dropna(subset=[target])
    if len(frame) < 10:
        raise DataError(f"'{ref}' has {len(frame)} rows with a target value; at least 10 are needed")
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise DataError(f"'{ref}' has no feature columns besides the target '{target}'")
    return Dataset(name=name, X=X.reset_index(drop=True), y=frame[target].reset_index(drop=True), target=target)


def split(data: Dataset, task: Task) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The held-out split of a task: `task.test_size` of the rows, stratified for
    classification, seeded by `task.split_seed`. Returns X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    stratify = None
    if task.task_type != "regression" and data.y.value_counts().min() >= 2:
        stratify = data.y
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=task.test_size, random_state=task.split_seed, stratify=stratify
    )
    return X_train, X_test, y_train, y_test


def infer_task_type(y: pd.Series) -> TaskType:
    """binary for two classes, multiclass for a few labels, regression for numbers."""
    n_unique = y.nunique()
    if ptypes.is_bool_dtype(y) or not ptypes.is_numeric_dtype(y):
        return "binary" if n_unique <= 2 else "multiclass"
    if n_unique <= 2:
        return "binary"
    is_integral = ptypes.is_integer_dtype(y) or bool((y.dropna() % 1 == 0).all())
    if is_integral and n_unique <= min(20, max(3, len(y) // 20)):
        return "multiclass"
    return "regression"


def check_target(y: pd.Series, task_type: TaskType, ref: str) -> None:
    """Raise `DataError` if `y` cannot be the target of a `task_type` task."""
    if task_type == "regression":
        if not ptypes.is_numeric_dtype(y) or ptypes.is_bool_dtype(y):
            raise DataError(
                f"target '{y.name}' of '{ref}' is not numeric ({y.dtype}), so it cannot be "
                "regressed; use --task binary or multiclass"
            )
        if y.nunique() < 2:
            raise DataError(f"target '{y.name}' of '{ref}' has a single value ({y.iloc[0]!r}); there is nothing to predict")
        return
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"target '{y.name}' of '{ref}' has a single class ({counts.index[0]!r}); "
            "a classifier needs at least two"
        )
    rare = [str(c) for c in counts.index[counts < 2]]
    if rare:  # it could not be both trained on and held out, nor stratified
        raise DataError(
            f"class(es) {', '.join(rare[:5])}{' …' if len(rare) > 5 else ''} of target '{y.name}' in '{ref}' "
            "have a single row; a classifier needs at least two per class (drop or merge them)"
        )
    if task_type == "binary" and len(counts) > 2:
        raise DataError(f"target '{y.name}' of '{ref}' has {len(counts)} classes; use --task multiclass")


def _load_sklearn(name: str) -> pd.DataFrame:
    if name not in SKLEARN_DATASETS:
        raise DataError(f"unknown built-in dataset 'sklearn:{name}'; choose one of {', '.join(SKLEARN_DATASETS)}")
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    return frame


def _load_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; give a CSV or Parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv") or suffix == "":
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"'{path}' is empty; give a table with a header and data rows") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        raise DataError(f"cannot read '{path}': {type(e).__name__}: {str(e).splitlines()[0]}") from e
    raise DataError(f"unsupported file type '{suffix}' for '{path}'; use .csv or .parquet")


def _cols(frame: pd.DataFrame, limit: int = 20) -> str:
    names = [str(c) for c in frame.columns]
    more = f" … (+{len(names) - limit})" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
