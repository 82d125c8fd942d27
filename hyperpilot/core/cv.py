"""`CrossValidation`: the objective of a tuning task, with trusted scoring.

Folds are made here (stratified for classification, seeded by the task's data seed, so
every optimiser sees the same objective; `validation` 'holdout' keeps only the first); the executor runs the trainer and reports each
fold's predictions; the metric is computed here (`core.scoring`), reported to the trial
as the running mean (so a pruner can stop a poor trial after a fold), and the trial's
value is the mean over folds. A trainer that trains in epochs (`trainers.run.run_epochs`)
reports every fold after every epoch: the intermediate value at step e is the mean over
the folds after epoch e (`EpochCurve`; the learning curve), and the trial's value that of
the last epoch. `refit` fits the best config on all training rows through
the same executor (same limits) and scores the held-out rows here (when there are any).

The study's pruner sees every fold: Optuna's default `MedianPruner` (what a bare
`optuna.create_study()` gets) prunes after a fold; set `optuna.pruners.NopPruner()` on the
study for none (`Assistant` does unless given a pruner)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from hyperpilot.core.executor import Executor, Job, Response
from hyperpilot.core.loop import FixedTrial, TrialHandle
from hyperpilot.core.scoring import checked_value, response_for, score
from hyperpilot.core.types import Outcome
from hyperpilot.errors import HyperpilotError, TaskError, TrialError
from hyperpilot.task import Task


def encode(y: pd.Series, task: Task) -> tuple[np.ndarray, list[Any] | None]:
    """(codes 0..k-1 and the class labels) for classification, (values, None) for regression."""
    if task.task_type == "regression":
        return y.to_numpy(dtype=float), None
    classes, codes = np.unique(y.to_numpy(), return_inverse=True)
    return codes, classes.tolist()


class CrossValidation:
    """`objective(handle) -> Outcome` for `task` on the training split (X, y).

    `code_for(handle)` may give the program of a `custom_code` trial (and attrs to store)."""

    def __init__(self, executor: Executor, X: pd.DataFrame, y: pd.Series, task: Task,
                 code_for: Any = None) -> None:
        if task.task_type is None or task.metric is None:
            raise TaskError("the task is not resolved yet; call task.resolved(task_type) first")
        self.executor = executor
        self.task = task
        self.X = X
        self.y, self.classes = encode(y, task)
        self.n_classes = None if self.classes is None else len(self.classes)
        self.code_for = code_for
        cv_cls = KFold if task.task_type == "regression" else StratifiedKFold
        cv = cv_cls(n_splits=task.cv_folds, shuffle=True, random_state=task.split_seed)
        self.folds = [(np.asarray(tr), np.asarray(va)) for tr, va in cv.split(np.zeros(len(self.y)), self.y)]
        if task.validation == "holdout":
            self.folds = self.folds[:1]  # the first fold alone: the same rows every trial
        self.responses = response_for(task.metric, task.task_type)

    def job(self, model: str, config: dict[str, Any], seed: int, code: str | None = None, **kw: Any) -> Job:
        return Job(model=model, config=config, task=self.task, X=self.X, y=self.y, folds=kw.pop("folds", self.folds),
                   responses=self.responses, seed=seed, code=code, n_classes=self.n_classes, **kw)

    def __call__(self, handle: TrialHandle | FixedTrial) -> Outcome:
        start = time.perf_counter()
        code, attrs = (None, {}) if self.code_for is None else self.code_for(handle)
        values: list[float] = []
        problem: list[str] = []
        curve = EpochCurve(len(self.folds))

        def on_report(step: int, response: Response) -> bool:
            if "epoch" in response:
                return on_epoch(step, response)
            if step != len(values) or step >= len(self.folds) or curve.scores:
                problem.append(f"the trial reported fold {step} out of order")
                return True
            try:
                values.append(score(str(self.task.metric), self.task.task_type, self.y[self.folds[step][1]],  # type: ignore[arg-type]
                                    response, self.n_classes))
            except HyperpilotError as e:
                problem.append(str(e))
                return True
            handle.report(float(np.mean(values)), step)
            return step < len(self.folds) - 1 and handle.should_prune()  # after the last fold nothing is saved: it completes

        def on_epoch(step: int, response: Response) -> bool:
            fold = curve.expect(step, response)
            if fold is None:
                problem.append(f"the trial reported epoch predictions out of order (step {step})")
                return True
            try:
                done = curve.add(score(str(self.task.metric), self.task.task_type, self.y[self.folds[fold][1]],  # type: ignore[arg-type]
                                       {k: v for k, v in response.items() if k not in EpochCurve.META}, self.n_classes))
            except HyperpilotError as e:
                problem.append(str(e))
                return True
            if done is None:
                return False
            values[:] = done
            handle.report(float(np.mean(values)), len(curve.scores) - 1)
            epochs = handle.config.get("epochs")  # an epoch trainer's config says how many it runs
            final = isinstance(epochs, int) and len(curve.scores) >= epochs
            return not final and handle.should_prune()  # after the last epoch it completes, as after the last fold

        res = self.executor.run(self.job(handle.model, handle.config, handle.seed, code, stop_at=handle.stop_at), on_report)
        seconds = time.perf_counter() - start
        attrs = {**attrs, **res.attrs, **curve.attrs()}
        if problem:
            return Outcome(None, seconds, problem[0], steps=values, attrs=attrs)
        if res.stopped:  # told to stop after a report, or stopped at the time budget's end
            return Outcome(None, seconds, pruned=True, steps=values, attrs=attrs)
        if not res.ok:
            return Outcome(None, seconds, res.error or "the trial failed", steps=values, attrs=attrs)
        if len(values) != len(self.folds):
            return Outcome(None, seconds, f"the trial reported {len(values)} of {len(self.folds)} folds", steps=values, attrs=attrs)
        try:
            value = checked_value(str(self.task.metric), float(np.mean(values)))
        except TrialError as e:
            return Outcome(None, seconds, str(e), steps=values, attrs=attrs)
        return Outcome(value, seconds, steps=values, attrs=attrs)

    def refit_seconds(self, trial_seconds: float) -> float:
        """The expected seconds of `refit` for a config whose trial took `trial_seconds`: one
        fit on every training row, against a trial's fit per fold on the fold's training rows
        (taken as linear in the rows)."""
        rows_per_fold = float(np.mean([len(train) for train, _ in self.folds]))
        return trial_seconds / len(self.folds) * len(self.y) / rows_per_fold

    def refit(self, model: str, config: dict[str, Any], X_test: pd.DataFrame | None, y_test: pd.Series | None,
              seed: int, code: str | None = None) -> tuple[Any, float | None]:
        """Fit `config` on every training row and score it on (X_test, y_test): (the fitted
        model, the held-out score; None when nothing is held out, X_test None). Raises
        `TrialError` when the refit fails."""
        if X_test is None or y_test is None:
            job = self.job(model, config, seed, code, folds=[(np.arange(len(self.y)), None)], keep_model=True)
            res = self.executor.run(job, lambda step, response: False)
            if not res.ok or res.model is None:
                raise TrialError(f"refitting the best config failed: {res.error or 'no model came back'}")
            return res.model, None
        if self.classes is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            codes = y_test.map(index)
            if codes.isna().any():
                raise TrialError("the held-out split has classes the model never saw")
            y_new = codes.to_numpy(dtype=int)
        else:
            y_new = y_test.to_numpy(dtype=float)
        scores: list[float] = []
        problem: list[str] = []

        def on_report(step: int, response: Response) -> bool:
            try:
                scores.append(score(str(self.task.metric), self.task.task_type, y_new, response, self.n_classes))  # type: ignore[arg-type]
            except HyperpilotError as e:
                problem.append(str(e))
            return False

        job = self.job(model, config, seed, code, folds=[(np.arange(len(self.y)), None)], X_new=X_test, keep_model=True)
        res = self.executor.run(job, on_report)
        if not res.ok or res.model is None:
            raise TrialError(f"refitting the best config failed: {res.error or 'no model came back'}")
        if problem or not scores:
            raise TrialError(f"scoring the refit model failed: {problem[0] if problem else 'no predictions came back'}")
        return res.model, scores[0]


class EpochCurve:
    """The folds' scores after each epoch, for trainers that report every epoch
    (`trainers.run.run_epochs`): report step e·k + fold carries `epoch` = e (a 0-d int)
    and may carry `device` (a 0-d str); the epoch's value is the mean over the k folds."""

    META = ("epoch", "device")

    def __init__(self, k: int) -> None:
        self.k = k
        self.scores: list[list[float]] = []
        self.device: str | None = None

    def expect(self, step: int, response: Response) -> int | None:
        """The fold this report is for, or None when it comes out of order."""
        epoch, fold = divmod(step, self.k)
        tag = np.asarray(response["epoch"])
        if tag.ndim != 0 or tag.dtype.kind not in "iu" or int(tag) != epoch:
            return None
        if len(self.scores) != epoch + (fold > 0) or (fold > 0 and len(self.scores[epoch]) != fold):
            return None
        if "device" in response and np.asarray(response["device"]).dtype.kind == "U":
            self.device = str(response["device"])[:20]
        return fold

    def add(self, value: float) -> list[float] | None:
        """Add the next fold's score; the epoch's fold scores once it is complete."""
        if not self.scores or len(self.scores[-1]) == self.k:
            self.scores.append([])
        self.scores[-1].append(value)
        return list(self.scores[-1]) if len(self.scores[-1]) == self.k else None

    def attrs(self) -> dict[str, Any]:
        """What to store with the trial: complete epochs run and the device."""
        if not self.scores:
            return {}
        done = len(self.scores) - (len(self.scores[-1]) < self.k)
        return {"epochs_run": done, **({"device": self.device} if self.device else {})}
