"""Running a `core.executor.Job` with a trainer: `run_job`.

`run_job` is the same code wherever a job runs (this process, a sandboxed trial process):
for each fold it fits the trainer on the fold's fit rows, predicts the other rows (`predict`,
`proba` or `decision`, as the job asks) and hands the predictions to `report(step, response)`,
which raises `core.types.Stop` when the coordinator says stop. It never scores.
Executors: `hyperpilot.sandbox` (`InProcessExecutor`, `SandboxExecutor`)."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from hyperpilot.core.executor import Job, Response
from hyperpilot.errors import TrialError
from hyperpilot.trainers.base import Trainer, get_trainer
from hyperpilot.trainers.torch_base import EpochTrainer


def run_job(job: Job, report: Callable[[int, Response], None], trainer: Trainer | None = None) -> Any:
    """Fit and predict every fold of `job`; returns the last fitted estimator. An
    `EpochTrainer` on folds with rows to predict runs them in lockstep (`run_epochs`)."""
    trainer = trainer or get_trainer(job.model)
    if isinstance(trainer, EpochTrainer) and job.folds and all(pred is not None for _, pred in job.folds):
        return run_epochs(job, report, trainer)
    fitted = None
    for step, (fit_rows, pred_rows) in enumerate(job.folds):
        fitted = trainer.fit(job.config, job.X.iloc[fit_rows], job.y[fit_rows], job.task)
        X_pred = job.X.iloc[pred_rows] if pred_rows is not None else job.X_new
        if X_pred is None:
            if job.keep_model:
                continue  # a refit with nothing held out: fit only
            raise TrialError("a refit job needs X_new to predict")
        report(step, predictions(fitted, X_pred, job.responses, job.n_classes))
    return fitted


def run_epochs(job: Job, report: Callable[[int, Response], None], trainer: EpochTrainer) -> Any:
    """Train every fold one epoch at a time; after each fold's epoch `e` its predictions go
    out with `epoch` = e and `device` (report steps e·k + fold), so the coordinator scores
    the cross-validated learning curve and a pruner can stop the trial after any epoch.
    (A refit, or an untrusted trainer's one-fold process, reports once: it has no rows to validate on.)"""
    runs = [trainer.start(job.config, job.X.iloc[fit], job.y[fit], job.task) for fit, _ in job.folds]
    step = 0
    for epoch in range(runs[0].epochs):
        for run, (_, pred) in zip(runs, job.folds, strict=True):
            run.epoch()
            response = predictions(run.model(), job.X.iloc[pred], job.responses, job.n_classes)
            report(step, {**response, "epoch": np.asarray(epoch), "device": np.asarray(run.device)})
            step += 1
    return runs[-1].model()


def predictions(fitted: Any, X: Any, wanted: tuple[str, ...], n_classes: int | None) -> Response:
    """The first kind of prediction in `wanted` that `fitted` has. Probabilities get one
    column per class even when a fold's training rows missed a class."""
    for kind in wanted:
        if kind == "proba" and callable(getattr(fitted, "predict_proba", None)):
            proba = np.asarray(fitted.predict_proba(X), dtype=float)
            seen = getattr(fitted, "classes_", None)
            if n_classes is not None and seen is not None and proba.shape[1] != n_classes:
                full = np.zeros((proba.shape[0], n_classes))
                full[:, np.asarray(seen, dtype=int)] = proba
                proba = full
            return {"proba": proba}
        if kind == "decision" and callable(getattr(fitted, "decision_function", None)):
            return {"decision": np.asarray(fitted.decision_function(X), dtype=float)}
        if kind == "predict":
            return {"predict": np.asarray(fitted.predict(X))}
    raise TrialError(f"the model gives none of the predictions the metric needs ({', '.join(wanted)})")


def error_line(e: BaseException) -> str:
    """One line: `ValueError: ... (at evaluate:12)`."""
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" (at {where.name}:{where.lineno})" if where else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{at}"[:500]
