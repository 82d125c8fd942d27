"""Loading a dataset (CSV, Parquet or a scikit-learn built-in) and checking that it can be
used for a task. Every problem is one `DataError` line that says what to do.

Checked before the first trial: the file decodes (`encoding`, default UTF-8), the target
exists and has values, no numeric cell is infinite (missing ones are fine: imputed), the
target fits the task type (`check_target`), the held-out split can hold every class
(`split`) and every class has a training row per cross-validation fold (`check_folds`).

`screen` then decides what a model may see: the columns the user drops, row indices and ID
columns (dropped with a notice), and a warning for a feature that alone predicts the
target almost perfectly (a leak). Notices go to the `hyperpilot.data` logger."""

from __future__ import annotations

import codecs
import difflib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from hyperpilot.errors import DataError
from hyperpilot.metrics import TaskType

if TYPE_CHECKING:
    from hyperpilot.task import Task

SKLEARN_DATASETS = ("iris", "digits", "wine", "breast_cancer", "diabetes")
SKLEARN_PREFIX = "sklearn:"
log = logging.getLogger("hyperpilot.data")


@dataclass(frozen=True)
class Dataset:
    """Features `X` (a DataFrame, mixed types and missing values allowed) and target `y`;
    after `screen`, the columns it dropped (name → why) and the suspected leaks (name → the
    CV score of that column alone)."""

    name: str
    X: pd.DataFrame
    y: pd.Series
    target: str
    dropped: dict[str, str] = field(default_factory=dict)
    leaks: dict[str, float] = field(default_factory=dict)


def load_dataset(ref: str, target: str | None = None, encoding: str | None = None,
                 frame: pd.DataFrame | None = None) -> Dataset:
    """Load `ref` — a CSV/Parquet path or `sklearn:NAME` — and split off `target`.

    `encoding` is the text encoding of a CSV file (default UTF-8; e.g. latin-1, cp1252);
    `frame` a table given in memory (`Task.frame`; `ref` then only names it)."""
    if frame is not None:
        name = ref.strip("<>")
    elif ref.startswith(SKLEARN_PREFIX):
        frame, name = _load_sklearn(ref[len(SKLEARN_PREFIX):]), ref
        target = target or "target"
    else:
        frame, name = _load_file(Path(ref).expanduser(), encoding), Path(ref).stem
    if frame.empty or len(frame.columns) == 0:
        raise DataError(f"'{ref}' has no rows; give a table with at least a header and data rows")
    if target is None:
        raise DataError(
            f"no target column given for '{ref}'; pass --target with one of: {_cols(frame)}"
        )
    if target not in frame.columns:
        raise DataError(f"target column '{_name(target)}' is not in '{ref}'; columns are: {_cols(frame)}")
    duplicated = frame.columns[frame.columns.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"'{ref}' has several columns named {', '.join(repr(_name(c)) for c in duplicated[:5])}; "
                        "give every column its own name")
    frame = frame.dropna(subset=[target])
    if len(frame) < 10:
        raise DataError(f"'{ref}' has {len(frame)} rows with a target value; at least 10 are needed")
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise DataError(f"'{ref}' has no feature columns besides the target '{_name(target)}'")
    check_finite(X, frame[target], ref)
    return Dataset(name=name, X=X.reset_index(drop=True), y=frame[target].reset_index(drop=True), target=target)


def split(data: Dataset, task: Task) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The held-out split of a task: `task.test_size` of the rows, stratified for
    classification, seeded by `task.split_seed`. Returns X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    stratify = None
    if task.task_type != "regression" and data.y.value_counts().min() >= 2:
        stratify = data.y
        n_classes, n_rows = data.y.nunique(), len(data.y)
        n_test = math.ceil(task.test_size * n_rows)  # as scikit-learn rounds it
        if min(n_test, n_rows - n_test) < n_classes:
            raise DataError(
                f"target '{_name(data.y.name)}' of '{task.data}' has {n_classes} classes, but its {n_rows} rows split "
                f"into {n_rows - n_test} for training and {n_test} held out ({task.test_size:g}); each part needs a row "
                "of every class: add rows, or drop or merge rare classes"
            )
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=task.test_size, random_state=task.split_seed, stratify=stratify
    )
    return X_train, X_test, y_train, y_test


def check_finite(X: pd.DataFrame, y: pd.Series, ref: str) -> None:
    """Raise `DataError` naming the numeric columns (features or target) that hold inf or -inf.
    Missing values (NaN) are fine: a feature's are imputed, a target's rows dropped."""
    if _has_inf(y):
        n = int(y.isin([np.inf, -np.inf]).sum())
        raise DataError(
            f"target '{_name(y.name)}' of '{ref}' has {n} infinite value(s) (inf or -inf); drop those rows or "
            "replace them with finite numbers (rows with an empty target are dropped)"
        )
    bad = [(c, int(X[c].isin([np.inf, -np.inf]).sum())) for c in X.columns if _has_inf(X[c])]
    if bad:
        names = ", ".join(f"'{_name(c)}' ({n} row{'s' if n > 1 else ''})" for c, n in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"column{'s' if len(bad) > 1 else ''} {names}{more} of '{ref}' hold infinite values (inf or -inf), "
            "which no model can use; replace them with finite numbers, or leave the cells empty (missing values are imputed)"
        )


def check_folds(y_train: pd.Series, task: Task) -> None:
    """Raise `DataError` if the training split cannot make `task.cv_folds` folds: fewer rows
    than folds, or (classification) a class with fewer training rows than folds."""
    k, ref = task.cv_folds, task.data
    if len(y_train) < k:
        raise DataError(f"the training split of '{ref}' has {len(y_train)} rows, fewer than the {k} "
                        f"cross-validation folds; pass --folds {max(2, len(y_train))} or fewer, or add rows")
    if task.task_type == "regression":
        return
    counts = y_train.value_counts()
    small = counts[counts < k]
    if small.empty:
        return
    listed = ", ".join(f"{_name(c)!r} ({n} row{'s' if n > 1 else ''})" for c, n in small.head(5).items())
    more = f" and {len(small) - 5} more" if len(small) > 5 else ""
    fix = f"pass --folds {int(small.min())} or fewer, or " if small.min() >= 2 else ""
    raise DataError(
        f"class{'es' if len(small) > 1 else ''} {listed}{more} of target '{_name(y_train.name)}' in '{ref}' "
        f"{'have' if len(small) > 1 else 'has'} fewer training rows than the {k} cross-validation folds "
        f"(after holding out {task.test_size:g} of the rows); {fix}drop or merge rare classes, or add rows"
    )


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
                f"target '{_name(y.name)}' of '{ref}' is not numeric ({y.dtype}), so it cannot be "
                "regressed; use --task binary or multiclass"
            )
        if y.nunique() < 2:
            raise DataError(f"target '{_name(y.name)}' of '{ref}' has a single value ({_name(y.iloc[0])!r}); there is nothing to predict")
        return
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"target '{_name(y.name)}' of '{ref}' has a single class ({_name(counts.index[0])!r}); "
            "a classifier needs at least two"
        )
    rare = [_name(c) for c in counts.index[counts < 2]]
    if rare:  # it could not be both trained on and held out, nor stratified
        raise DataError(
            f"class(es) {', '.join(rare[:5])}{' …' if len(rare) > 5 else ''} of target '{_name(y.name)}' in '{ref}' "
            "have a single row; a classifier needs at least two per class (drop or merge them)"
        )
    if task_type == "binary" and len(counts) > 2:
        raise DataError(f"target '{_name(y.name)}' of '{ref}' has {len(counts)} classes; use --task multiclass")


# --- what a model may see: dropped columns, row indices and IDs, leaks ---------------------

_ID_NAMES = re.compile(r"(id|ids|idx|index|key|row|rowid|row_?num(ber)?|rownames|row\.names|uuid|guid|unnamed: ?\d+|\.\.\.\d+)")
_ID_SUFFIX = re.compile(r".*[_\s.\-]id|.*[a-z0-9]I[dD]")  # customer_id, user-id, PassengerId, customerID
LEAK_SCORE = 0.99  # accuracy (classification) or R² (regression) of one column alone
LEAK_ROWS = 2000  # the leak check looks at this many rows at most (fewer on wide tables: rows × columns ≤ LEAK_CELLS)
LEAK_CELLS = 300_000


def screen(data: Dataset, task_type: TaskType, drop: Sequence[str] = (), seed: int = 0) -> Dataset:
    """The dataset a model may see: the `drop` columns removed (a name that is not a column
    is a `DataError` naming the close matches), row indices and ID columns dropped with a
    notice (`id_columns`), and a warning for the features that alone predict the target
    almost perfectly (`leaky_columns`, a sample of at most `LEAK_ROWS` rows, seeded).
    Both are recorded on the result (`Dataset.dropped`, `Dataset.leaks`)."""
    by_name = {str(c): c for c in data.X.columns}
    dropped: dict[str, str] = {}
    for name in drop:
        if name == str(data.target):
            raise DataError(f"'{_name(name)}' is the target of '{data.name}'; it cannot be dropped "
                            "(pick another target to predict instead)")
        if name not in by_name:
            lower = {k.lower(): k for k in by_name}
            close = ([lower[name.lower()]] if name.lower() in lower else []) or difflib.get_close_matches(name, list(by_name), 3)
            quoted = [repr(_name(c)) for c in close]
            hint = (f"did you mean {' or '.join([', '.join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)}?"
                    if close else f"columns are: {_cols(data.X)}")
            raise DataError(f"column '{_name(name)}' to drop is not in '{data.name}'; {hint}")
        dropped[name] = "dropped as asked"
    X = data.X.drop(columns=[by_name[n] for n in dropped])
    found = id_columns(X)
    if found:
        log.warning("not using %s of '%s' as %s: %s", "a column" if len(found) == 1 else f"{len(found)} columns",
                    _name(data.name), "a feature" if len(found) == 1 else "features",
                    "; ".join(f"'{_name(c)}' is {why}" for c, why in found.items()))
        X = X.drop(columns=[by_name[c] for c in found])
        dropped.update(found)
    if X.shape[1] == 0:
        raise DataError(f"'{data.name}' has no feature columns left after dropping "
                        f"{', '.join(repr(_name(c)) for c in dropped)}; a model needs at least one")
    leaks = leaky_columns(X, data.y, task_type, seed)
    if leaks:
        what = "accuracy" if task_type != "regression" else "R²"
        listed = ", ".join(f"'{_name(c)}' ({what} {v:.3f})" for c, v in list(leaks.items())[:5])
        one = len(leaks) == 1
        log.warning("%s alone predict%s target '%s' almost perfectly: a leak if %s only known once the target "
                    "is; if so, drop %s (--drop)", f"column {listed}" if one else f"columns {listed}", "s" if one else "",
                    _name(data.target), "it is" if one else "they are", "it" if one else "them")
    return replace(data, X=X, dropped=dropped, leaks=leaks)


def id_named(name: str) -> bool:
    """A column name that says it identifies rows: `id`, `index`, `rownames`, `Unnamed: 0`,
    `customer_id`, `PassengerId`, `customerID` …"""
    return bool(_ID_NAMES.fullmatch(name.strip().lower()) or _ID_SUFFIX.fullmatch(name.strip()))


def id_columns(X: pd.DataFrame) -> dict[str, str]:
    """Columns that name rows rather than describe them (name → why): unique per row, no
    missing value, and either integers in constant steps (a row index, e.g. `Unnamed: 0`
    from a saved DataFrame) or named like an ID (`id`, `index`, `rownames`, `customer_id`,
    `PassengerId` …) with integer or text values. A unique float column, or unique integers
    that are neither counted nor ID-named, are features and stay."""
    found = {}
    n = len(X)
    for c in X.columns:
        col = X[c]
        if n < 2 or ptypes.is_bool_dtype(col) or col.isna().any() or col.nunique() != n:
            continue
        integral = ptypes.is_integer_dtype(col) or (ptypes.is_float_dtype(col) and bool((col % 1 == 0).all()))
        if integral:
            steps = np.diff(col.to_numpy(dtype=float))
            if steps[0] != 0 and bool((steps == steps[0]).all()):
                found[str(c)] = "a row index (unique integers in constant steps)"
                continue
        text = ptypes.is_object_dtype(col) or ptypes.is_string_dtype(col)
        if (integral or text) and id_named(str(c)):
            found[str(c)] = "an ID (unique per row, named like one)"
    return found


def leaky_columns(X: pd.DataFrame, y: pd.Series, task_type: TaskType, seed: int = 0) -> dict[str, float]:
    """Features that alone predict `y` almost perfectly (name → score): in a 3-fold CV on at
    most `LEAK_ROWS` rows (fewer on wide tables), a tree of at most 64 leaves on the column
    (numbers) or its per-value majority class / mean (text) reaches accuracy ≥ `LEAK_SCORE`
    while making at most a tenth of the majority guess's errors (classification), or
    R² ≥ `LEAK_SCORE` (regression). Fewer than 30 rows tell nothing: no check."""
    from sklearn.model_selection import KFold
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if len(y) < 30 or X.shape[1] == 0:
        return {}
    rows = np.random.default_rng(seed).permutation(len(y))[:max(300, min(LEAK_ROWS, LEAK_CELLS // X.shape[1]))]
    X, y = X.iloc[rows], y.iloc[rows]
    regression = task_type == "regression"
    target = y.to_numpy(dtype=float) if regression else pd.factorize(y)[0]
    spread = float(np.var(target)) if regression else 0.0
    majority = 0.0 if regression else float(np.bincount(target).max() / len(target))
    if regression and spread == 0:
        return {}
    folds = list(KFold(3, shuffle=True, random_state=seed).split(target))
    found = {}
    tree = DecisionTreeRegressor if regression else DecisionTreeClassifier
    for c in X.columns:
        numeric = ptypes.is_numeric_dtype(X[c]) or ptypes.is_bool_dtype(X[c])
        x = X[c].astype("float64").to_numpy().reshape(-1, 1) if numeric else None  # missing values: NaN
        keys = None if numeric else X[c].astype(str).to_numpy()
        pred = np.empty(len(target), dtype=float)
        for train, valid in folds:
            if x is not None:
                model = tree(max_leaf_nodes=64, random_state=seed).fit(x[train], target[train])
                pred[valid] = model.predict(x[valid])
            elif keys is not None:
                seen = pd.DataFrame({"key": keys[train], "y": target[train]})
                if regression:
                    table, fallback = seen.groupby("key")["y"].mean(), float(target[train].mean())
                else:  # the most frequent class of each value (value_counts sorts by count)
                    table = seen.value_counts().reset_index().drop_duplicates("key").set_index("key")["y"]
                    fallback = float(np.bincount(target[train]).argmax())
                pred[valid] = pd.Series(keys[valid]).map(table).fillna(fallback).to_numpy(dtype=float)
        if regression:
            score = 1 - float(np.mean((pred - target) ** 2)) / spread
            leak = score >= LEAK_SCORE
        else:
            score = float(np.mean(pred == target))
            leak = score >= LEAK_SCORE and 1 - score <= 0.1 * (1 - majority)
        if leak:
            found[str(c)] = round(score, 4)
    return found


def _load_sklearn(name: str) -> pd.DataFrame:
    if name not in SKLEARN_DATASETS:
        raise DataError(f"unknown built-in dataset 'sklearn:{name}'; choose one of {', '.join(SKLEARN_DATASETS)}")
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    return frame


def _load_file(path: Path, encoding: str | None = None) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; give a CSV or Parquet file")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except (LookupError, ValueError):
            raise DataError(f"unknown encoding {encoding!r}; use e.g. utf-8, latin-1, cp1252 or utf-16") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv") or suffix == "":
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding=encoding)
    except pd.errors.EmptyDataError:
        raise DataError(f"'{path}' is empty; give a table with a header and data rows") from None
    except UnicodeError as e:
        where = f" (byte {e.object[e.start:e.start + 1]!r} at offset {e.start})" if isinstance(e, UnicodeDecodeError) else ""
        other = "cp1252 or utf-16" if (encoding or "").lower().replace("_", "-") in ("latin-1", "latin1", "iso-8859-1") else "latin-1"
        raise DataError(f"cannot read '{path}' as {encoding or 'utf-8'} text{where}; give the file's encoding, "
                        f"e.g. --encoding {other}") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        raise DataError(f"cannot read '{path}': {type(e).__name__}: {_first_line(e)}") from e
    raise DataError(f"unsupported file type '{suffix}' for '{path}'; use .csv or .parquet")


def _has_inf(values: pd.Series) -> bool:
    if not ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values):
        return False
    return bool(values.isin([np.inf, -np.inf]).any())


def _name(value: object) -> str:
    """A column name or class label for a one-line message: control characters escaped."""
    text = str(value)
    return text if text.isprintable() else "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0][:300] if lines else "(no message)"


def _cols(frame: pd.DataFrame, limit: int = 20) -> str:
    names = [_name(c) for c in frame.columns]
    more = f" … (+{len(names) - limit})" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
