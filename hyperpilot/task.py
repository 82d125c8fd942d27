"""`Task`: what the user asked for — data, target, task type, metric, models, budget, seed."""

from __future__ import annotations

import codecs
import re
import secrets
import time
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hyperpilot.errors import TaskError
from hyperpilot.metrics import DEFAULT_METRIC, Direction, TaskType, get_metric
from hyperpilot.samplers import check_sampler
from hyperpilot.space import _first_error

DEFAULT_MODELS: dict[str, list[str]] = {
    "binary": ["hist_gradient_boosting"],
    "multiclass": ["hist_gradient_boosting"],
    "regression": ["hist_gradient_boosting"],
}


class Task(BaseModel):
    """A tuning request. `task_type`, `metric` and `models` may be left out and are then
    filled in from the data by `resolved()`."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="CSV/Parquet path or sklearn:NAME")
    target: str | None = Field(None, description="target column (sklearn: datasets use 'target')")
    task_type: TaskType | None = None
    metric: str | None = None
    models: list[str] = Field(default_factory=list, description="model card names to tune")
    n_trials: int = Field(20, ge=1, description="total trials in the study, resumed ones included")
    timeout: float | None = Field(None, gt=0, description="seconds for this run")
    seed: int = Field(0, description="seed of the optimiser (and of the data, unless data_seed is set)")
    data_seed: int | None = Field(None, description="seed of the split, the CV folds and the models; default: seed")
    cv_folds: int = Field(5, ge=2, le=20)
    test_size: float = Field(0.2, gt=0, lt=0.9)
    sampler: str = Field("tpe", description="BO engine: a name registered in hyperpilot.samplers (tpe, gp, random, qmc, cmaes, …)")
    study_name: str | None = None
    encoding: str | None = Field(None, description="text encoding of a CSV file (default UTF-8), e.g. latin-1")

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, data: Any, handler: Any) -> Any:
        """pydantic's own checks (types, ranges, unknown fields) as one `TaskError` line."""
        try:
            return handler(data)
        except ValidationError as e:
            raise TaskError(f"invalid task: {_first_error(e)}") from None

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
        return self

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

    def default_study_name(self) -> str:
        """A readable, new name per run, e.g. `breast_cancer-random_forest-20261127-043012-1a2b`;
        pass it back as `study_name` to resume that study."""
        base = self.data.split(":", 1)[1] if self.data.startswith("sklearn:") else PurePath(self.data.replace("\\", "/")).stem
        stem = re.sub(r"[^A-Za-z0-9_]+", "-", base).strip("-")[:40]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return f"{stem or 'data'}-{'+'.join(self.models)[:40]}-{stamp}-{secrets.token_hex(2)}"
