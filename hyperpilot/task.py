"""`Task`: what the user asked for — data, target, task type, metric, models, budget, seed."""

from __future__ import annotations

import codecs
import os
import re
import secrets
import time
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from hyperpilot.errors import DataError, TaskError
from hyperpilot.metrics import DEFAULT_METRIC, Direction, TaskType, get_metric
from hyperpilot.samplers import check_sampler
from hyperpilot.space import _first_error

if TYPE_CHECKING:
    import pandas as pd

# three families when the user names none: boosted trees, randomised trees, a linear model
# (measured against FLAML and HistGradientBoosting alone: docs/benchmarks.md, "hyperpilot vs FLAML")
DEFAULT_MODELS: dict[str, list[str]] = {
    "binary": ["hist_gradient_boosting", "extra_trees", "logistic_regression"],
    "multiclass": ["hist_gradient_boosting", "extra_trees", "logistic_regression"],
    "regression": ["hist_gradient_boosting", "extra_trees", "ridge"],
}


IN_MEMORY = ("<dataframe>", "<arrays>")  # what `data` reads for a table given in memory


class Task(BaseModel):
    """A tuning request. `task_type`, `metric` and `models` may be left out and are then
    filled in from the data by `resolved()`.

    `data` is a CSV/Parquet path, `sklearn:NAME`, a pandas DataFrame (with `target` one of
    its columns) or `(X, y)` (arrays or DataFrame/Series; array columns are named x0..xN,
    the target `target` unless given). An in-memory table is kept in `frame` (`data` then
    reads `<dataframe>` or `<arrays>`); a solve writes it into the study folder and stores
    that path with the study, so `resume` works. Budget: `n_trials` caps the trials,
    `timeout` the seconds; a timeout alone means no trial cap, neither means 20 trials."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="CSV/Parquet path or sklearn:NAME (or, when built, a DataFrame or (X, y))")
    target: str | None = Field(None, description="target column (sklearn: datasets use 'target')")
    task_type: TaskType | None = None
    metric: str | None = None
    models: list[str] = Field(default_factory=list, description="model card names to tune")
    n_trials: int | None = Field(20, ge=1, description="total trials in the study, resumed ones included; "
                                 "None: no cap, run until the timeout (the default when only a timeout is given)")
    timeout: float | None = Field(None, gt=0, description="seconds for this run's search and refit (the search keeps "
                                  "the refit's expected time free; a trial running at its end is stopped once a trial "
                                  "has completed: after its current fold, or killed in the sandbox)")
    seed: int = Field(0, description="seed of the optimiser (and of the data, unless data_seed is set)")
    data_seed: int | None = Field(None, description="seed of the split, the CV folds and the models; default: seed")
    cv_folds: int = Field(5, ge=2, le=20)
    validation: Literal["auto", "cv", "holdout"] = Field(
        "auto", description="how a trial is scored: 'cv' (cv_folds-fold cross-validation), 'holdout' (only the "
        "first of those folds: 1/cv_folds of the training rows validate, the rest train; cv_folds times cheaper), "
        "'auto' (FLAML's rule, decided once when the study starts: holdout when a time budget is too short for "
        "CV on a table this size, see `Task.decided`)")
    test_size: float = Field(0.2, ge=0, lt=0.9, description="share of rows held out for the test score; "
                             "0: none held out (CV and the refit use every row; no test score)")
    sampler: str = Field("tpe", description="BO engine: a name registered in hyperpilot.samplers (tpe, gp, random, qmc, cmaes, …)")
    study_name: str | None = None
    encoding: str | None = Field(None, description="text encoding of a CSV file (default UTF-8), e.g. latin-1")
    text_column: str | None = Field(None, description="the column of free text a text model reads (default: the "
                                    "only text column)")
    base_model: str | None = Field(None, description="a local folder of the pretrained model a text "
                                   "model fine-tunes (default: the bundled all-MiniLM-L6-v2); never downloaded")
    drop: list[str] = Field(default_factory=list, description="columns no model may see (e.g. an ID, or a column only "
                            "known once the target is); row indices and ID columns are dropped without asking")
    _frame: Any = PrivateAttr(None)

    if TYPE_CHECKING:  # what `Task(...)` takes: `data` may be a table in memory too (see the class docstring)
        def __init__(self, *, data: str | os.PathLike[str] | pd.DataFrame | tuple[Any, Any], **fields: Any) -> None: ...

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, data: Any, handler: Any) -> Any:
        """pydantic's own checks (types, ranges, unknown fields) as one `TaskError` line;
        an in-memory table is checked and set aside (`frame`); a timeout alone lifts the trial cap."""
        frame = None
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("data"), os.PathLike):
                data["data"] = os.fspath(data["data"])
            elif "data" in data and not isinstance(data["data"], str):
                data["data"], data["target"], frame = in_memory_table(data["data"], data.get("target"))
            if data.get("timeout") is not None and "n_trials" not in data:
                data["n_trials"] = None
        try:
            task = handler(data)
        except ValidationError as e:
            raise TaskError(f"invalid task: {_first_error(e)}") from None
        if frame is not None:
            task._frame = frame
        return task

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: str) -> str:
        return check_sampler(v)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                codecs.lookup(v)
            except (LookupError, ValueError):
                raise TaskError(f"unknown encoding {v!r}; use e.g. utf-8, latin-1, cp1252 or utf-16") from None
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        return None if v is None else get_metric(v).name

    @field_validator("study_name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}", v):
            raise TaskError(f"study name {v!r} must be letters, digits and '_', '.', '+' or '-'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Task:
        if self.metric and self.task_type:
            get_metric(self.metric, self.task_type)
        if self.n_trials is None and self.timeout is None:
            raise TaskError("n_trials=None (no trial cap) needs a timeout: give a number of trials, a timeout, or both")
        return self

    @property
    def frame(self) -> Any:
        """The table (features and target, a pandas DataFrame) given in memory; None when
        `data` names a file or a built-in dataset."""
        return self._frame

    def updated(self, **changes: Any) -> Task:
        """A copy with `changes`, validated like a new task (unlike `model_copy`); an
        in-memory table stays with it."""
        task = Task.model_validate({**self.model_dump(), **changes})
        task._frame = self._frame
        return task

    def stored_at(self, path: str) -> Task:
        """This task reading its table from `path` (where a solve wrote the in-memory table)."""
        task = self.model_copy(update={"data": path})
        task._frame = None
        return task

    @property
    def split_seed(self) -> int:
        """The seed of everything about the data: held-out split, CV folds, model randomness.
        Keeping it fixed while `seed` varies gives every optimiser run the same objective."""
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def direction(self) -> Direction:
        if self.metric is None:
            raise TaskError("the task has no metric yet; call resolved() first")
        return get_metric(self.metric).direction

    def resolved(self, task_type: TaskType) -> Task:
        """A copy with task type, metric, models and study name filled in."""
        if self.task_type is not None and self.task_type != task_type:
            task_type = self.task_type
        metric = self.metric or DEFAULT_METRIC[task_type]
        get_metric(metric, task_type)
        task = self.model_copy(
            update={
                "task_type": task_type,
                "metric": metric,
                "models": self.models or list(DEFAULT_MODELS[task_type]),
            }
        )
        if task.study_name is None:
            task = task.model_copy(update={"study_name": task.default_study_name()})
        return task

    def decided(self, rows: int, columns: int) -> Task:
        """A copy with `validation` 'auto' decided for a training table of `rows` × `columns`,
        by FLAML's rule (`AutoML._decide_eval_method`): cross-validation when there is no time
        budget, or when rows · columns / 0.9 < 10⁷ · timeout / 3600 and rows < 100,000;
        otherwise the holdout. Stored with the study, so a resumed study keeps it."""
        if self.validation != "auto":
            return self
        cv = self.timeout is None or (rows * columns / 0.9 < 1e7 * self.timeout / 3600 and rows < 100_000)
        return self.model_copy(update={"validation": "cv" if cv else "holdout"})

    @property
    def scheme(self) -> str:
        """How trials are scored, in words: `5-fold CV`, `holdout (1/5 of the training rows)`."""
        if self.validation == "holdout":
            return f"holdout (1/{self.cv_folds} of the training rows)"
        if self.validation == "auto" and self.timeout is not None:
            return f"{self.cv_folds}-fold CV (a holdout if the table is large for the time)"
        return f"{self.cv_folds}-fold CV"

    def with_code(self) -> Task:
        """A copy that also tunes `custom_code`, whose programs the LLM writes (`solve --code`,
        "write your own model" in a chat), next to the models asked for (none: the default)."""
        if "custom_code" in self.models:
            return self
        models = self.models or list(DEFAULT_MODELS[self.task_type or "binary"])  # the same default for every type
        return self.model_copy(update={"models": [*models, "custom_code"]})

    def describe(self) -> str:
        """The task in one line, as the CLI restates a request before the run, e.g.
        `multiclass classification of 'species' in iris.csv · metric accuracy (maximise) ·
        models random_forest, svm · budget 20 trials, 10 min · 5-fold CV`."""
        def duration(seconds: float) -> str:
            h, rest = divmod(round(seconds), 3600)
            m, s = divmod(rest, 60)
            parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s or not (h or m) else ""]
            return " ".join(p for p in parts if p)

        kind = {"binary": "binary classification", "multiclass": "multiclass classification",
                "regression": "regression"}.get(str(self.task_type), "a model (task type from the data)")
        where = self.data if self.data.startswith("sklearn:") else PurePath(self.data.replace("\\", "/")).name or self.data
        parts = [f"{kind} of '{self.target or 'target'}' in {where}"]
        if self.metric:
            sense = "maximise" if get_metric(self.metric).direction == "maximize" else "minimise"
            parts.append(f"metric {self.metric} ({sense})")
        parts.append(f"models {', '.join(self.models)}" if self.models else "default models")
        budget = [f"{self.n_trials} trials" if self.n_trials else "", duration(self.timeout) if self.timeout else ""]
        parts.append("budget " + ", ".join(b for b in budget if b) + ("" if self.n_trials else " (no trial cap)"))
        parts.append(self.scheme)
        if self.drop:
            parts.append(f"dropping {', '.join(self.drop)}")
        return " · ".join(parts)

    def default_study_name(self) -> str:
        """A readable, new name per run, e.g. `breast_cancer-random_forest-20261127-043012-1a2b`;
        pass it back as `study_name` to resume that study."""
        base = self.data.split(":", 1)[1] if self.data.startswith("sklearn:") else PurePath(self.data.replace("\\", "/")).stem
        stem = re.sub(r"[^A-Za-z0-9_]+", "-", base).strip("-")[:40]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return f"{stem or 'data'}-{'+'.join(self.models)[:40]}-{stamp}-{secrets.token_hex(2)}"


def in_memory_table(data: Any, target: str | None) -> tuple[str, str, Any]:
    """(what `Task.data` reads, the target column, one DataFrame of features and target) for
    a pandas DataFrame or `(X, y)`; every problem is one `DataError` / `TaskError` line."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise DataError(f"the DataFrame is empty ({data.shape[0]} rows, {data.shape[1]} columns); give a table with data rows")
        frame = data.rename(columns=str).reset_index(drop=True)
        if target is None:
            raise TaskError(f"give the target column of the DataFrame: target=one of {_listed(frame.columns)}")
        if target not in frame.columns:
            raise DataError(f"target column {target!r} is not in the DataFrame; columns are: {_listed(frame.columns)}")
        return IN_MEMORY[0], target, frame
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TaskError(f"data must be a file path, sklearn:NAME, a pandas DataFrame or (X, y); got {type(data).__name__}")
    X, y = data
    if isinstance(X, pd.DataFrame):
        features = X.rename(columns=str).reset_index(drop=True)
    else:
        try:
            values = np.asarray(X)
        except ValueError as e:  # ragged rows
            raise DataError(f"X is not a table of rows × features: {str(e).splitlines()[0]}") from None
        if values.ndim != 2:
            raise DataError(f"X must be 2-D (rows × features); got {values.ndim}-D {type(X).__name__} of shape {values.shape}"
                            + (" (a sparse matrix? pass X.toarray())" if values.ndim == 0 else ""))
        features = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        raise DataError(f"y must be 1-D (one target value per row); got shape {labels.shape}")
    if len(features) != len(labels):
        raise DataError(f"X has {len(features)} rows but y has {len(labels)} values; give one target value per row")
    if len(features) == 0 or features.shape[1] == 0:
        raise DataError(f"X is empty ({features.shape[0]} rows, {features.shape[1]} features); give data rows and features")
    name = target or (y.name if isinstance(y, pd.Series) and isinstance(y.name, str) else None) or "target"
    if name in features.columns:
        raise DataError(f"X already has a column named {name!r}; pass target=ANOTHER_NAME for y")
    dtype = y.dtype if isinstance(y, pd.Series) else None
    return IN_MEMORY[1], name, features.assign(**{name: pd.Series(labels, dtype=dtype)})


def _listed(columns: Any, limit: int = 20) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (f" … (+{len(names) - limit})" if len(names) > limit else "")
