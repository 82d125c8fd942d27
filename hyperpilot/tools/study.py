"""Agent tools over studies: start one, continue it, its status, explain a trial from
measured importances, compare two trials, export the best model and report.

Every number returned is read from the study (Optuna's trials, Optuna's
`get_param_importances` over the model's complete trials, the model cards' ranges); nothing
is estimated or written by an LLM."""

from __future__ import annotations

import math
import shutil
from typing import Any

from pydantic import BaseModel, Field

from hyperpilot.errors import StudyError, TaskError
from hyperpilot.tools.runtime import Runtime, safe

EXPORT_FOLDER = "hyperpilot-export"
EXPORTED = ("model.joblib", "report.md", "report.json", "trials.csv", "best_program.py")


class StartStudyArgs(BaseModel):
    data: str = Field(description="a CSV or Parquet file, or a built-in such as sklearn:iris")
    target: str | None = Field(None, description="the column to predict (built-in datasets: leave empty)")
    models: list[str] = Field(default_factory=list, max_length=12, description="model card names (empty: the default)")
    metric: str | None = Field(None, description="metric to optimise (empty: accuracy / rmse)")
    n_trials: int | None = Field(20, ge=1, le=100_000, description="trials to run")
    timeout: float | None = Field(None, gt=0, description="seconds for the search")
    cv_folds: int = Field(5, ge=2, le=20)
    study_name: str | None = Field(None, description="a name for the study (empty: a new name)")


class ContinueStudyArgs(BaseModel):
    study: str = Field(description="the study's name")
    more_trials: int = Field(10, ge=1, le=100_000, description="trials to add to those done")


class StudyArgs(BaseModel):
    study: str = Field(description="the study's name")


class ExplainArgs(BaseModel):
    study: str = Field(description="the study's name")
    trial: int | None = Field(None, ge=0, description="a trial number (empty: the best trial)")
    param: str | None = Field(None, description="one hyperparameter to explain (empty: all)")


class CompareArgs(BaseModel):
    study: str = Field(description="the study's name")
    a: int = Field(ge=0, description="a trial number")
    b: int = Field(ge=0, description="another trial number")


class ExportArgs(BaseModel):
    study: str = Field(description="the study's name")
    folder: str = Field(EXPORT_FOLDER, description="where to copy the model and the report")


def result_summary(result: Any) -> dict[str, Any]:
    """The compact, JSON-able summary of a finished `Result`."""
    return {"study": result.study_name, "task": result.task.describe(), "metric": result.task.metric,
            "best_model": result.best_model, "best_config": result.best_config, "cv_score": _num(result.cv_score),
            "test_score": _num(result.test_score), "n_trials": result.n_trials, "n_failed": result.n_failed,
            "n_pruned": result.n_pruned, "wall_seconds": round(result.wall_seconds, 1),
            "model_path": str(result.model_path), "report_path": str(result.report_path)}


@safe
def start_study(args: StartStudyArgs, runtime: Runtime) -> dict[str, Any]:
    """Tune models on a table within a budget; the best model and report are saved."""
    from hyperpilot.data import SKLEARN_PREFIX
    from hyperpilot.task import Task

    fields = args.model_dump()
    if not args.data.startswith(SKLEARN_PREFIX):
        path = runtime.path(args.data)
        if not path.is_file():
            raise TaskError(f"there is no file '{args.data}' (looked in {path.parent}); give an existing CSV or Parquet file")
        fields["data"] = str(path)
    if fields["n_trials"] is None and fields["timeout"] is None:
        fields["n_trials"] = 20
    task = Task(**fields)
    with runtime.running("starting the first trial") as progress:
        result = runtime.assistant(progress).solve(task)
    return result_summary(result)


@safe
def continue_study(args: ContinueStudyArgs, runtime: Runtime) -> dict[str, Any]:
    """Run more trials in an existing study (completed ones are kept), then refit and report."""
    from hyperpilot import studies

    study = studies.load_study(args.study, runtime.storage)
    total = studies.n_finished(study) + args.more_trials
    with runtime.running("continuing") as progress:
        result = runtime.assistant(progress).resume(args.study, n_trials=total)
    return result_summary(result)


@safe
def study_status(args: StudyArgs, runtime: Runtime) -> dict[str, Any]:
    """Trials done, failed and running, the best so far, the budget and the report."""
    from hyperpilot import studies

    study = studies.load_study(args.study, runtime.storage)
    task = studies.stored_task(study)
    table = studies.trial_table(study)
    best = _best(study)
    report = studies.study_dir(args.study) / "report.md"
    return {"study": args.study, "metric": task.metric, "direction": study.direction.name.lower(),
            "budget": task.n_trials, "done": studies.n_finished(study), "failed": studies.n_failed(study),
            "pruned": int((table.state == "PRUNED").sum()), "running": int((table.state == "RUNNING").sum()),
            "best": None if best is None else _trial(best),
            "report": str(report) if report.exists() else None}


@safe
def explain(args: ExplainArgs, runtime: Runtime) -> dict[str, Any]:
    """Why a trial's (default: the best) config: each hyperparameter's value, its range in the
    model card, and its importance measured by Optuna over the model's complete trials."""
    from hyperpilot import studies
    from hyperpilot.cards import get_model_card
    from hyperpilot.report.plots import analyse_model

    study = studies.load_study(args.study, runtime.storage)
    trial = _trial_of(study, args.trial) if args.trial is not None else _best(study)
    if trial is None:
        raise StudyError(f"study '{args.study}' has no complete trial yet; nothing to explain")
    model = str(trial.params.get("model", ""))
    config = {k.split(".", 1)[1]: v for k, v in trial.params.items() if "." in k}
    _, analysis = analyse_model(study, model)
    focus = None
    if args.param:
        focus = _param_named(args.param, list(config))
        if focus is None:
            raise TaskError(f"trial {trial.number} ({model}) has no hyperparameter '{args.param}'; "
                            f"it has {', '.join(config) or 'none'}")
    card = get_model_card(model)
    ranked = sorted(analysis.importances, key=lambda k: -analysis.importances[k])
    params = []
    for name, value in config.items():
        p = card.space[name] if name in card.space.names else None
        span = None if p is None else (list(p.choices) if p.type == "categorical" else [p.low, p.high])  # type: ignore[union-attr]
        params.append({"name": name, "value": value, "range": span, "log": bool(getattr(p, "log", False)),
                       "default": card.default.get(name), "importance": _num(analysis.importances.get(name)),
                       "rank": ranked.index(name) + 1 if name in ranked else None})
    params.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0))
    return {"study": args.study, "trial": trial.number, "model": model, "value": _num(trial.value),
            "metric": studies.stored_task(study).metric, "n_complete": analysis.n_complete, "params": params,
            "focus": focus, "notes": list(analysis.notes), "importances_of": len(analysis.importances)}


@safe
def compare_trials(args: CompareArgs, runtime: Runtime) -> dict[str, Any]:
    """Two trials side by side: model, value, fold spread, and the hyperparameters that differ."""
    from hyperpilot import studies

    study = studies.load_study(args.study, runtime.storage)
    a, b = _trial_of(study, args.a), _trial_of(study, args.b)
    ra, rb = _trial(a), _trial(b)
    keys = list(dict.fromkeys([*ra["config"], *rb["config"]]))
    differ = {k: [ra["config"].get(k), rb["config"].get(k)] for k in keys if ra["config"].get(k) != rb["config"].get(k)}
    better = None
    if ra["value"] is not None and rb["value"] is not None and ra["value"] != rb["value"]:
        maximise = study.direction.name.lower() == "maximize"
        better = a.number if (ra["value"] > rb["value"]) == maximise else b.number
    return {"study": args.study, "metric": studies.stored_task(study).metric, "a": ra, "b": rb,
            "same_model": ra["model"] == rb["model"], "differ": differ, "better": better}


@safe
def export_study(args: ExportArgs, runtime: Runtime) -> dict[str, Any]:
    """Copy the study's best model, report, trial table and plots into a folder."""
    from hyperpilot import studies

    studies.load_study(args.study, runtime.storage)  # an unknown name is one line
    source = studies.study_dir(args.study)
    if not (source / "model.joblib").is_file():
        raise StudyError(f"study '{args.study}' has no saved model yet (it is running or never finished); "
                         "export it once a run has ended")
    folder = runtime.path(args.folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = [p for p in sorted(source.iterdir()) if p.is_file() and (p.name in EXPORTED or p.suffix == ".png")]
        for p in files:
            shutil.copy2(p, folder / p.name)
    except OSError as e:
        raise StudyError(f"cannot export to {folder}: {e.strerror or e}") from None
    return {"study": args.study, "folder": str(folder), "files": [p.name for p in files]}


def _num(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _best(study: Any) -> Any:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def _trial_of(study: Any, number: int) -> Any:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise StudyError(f"study '{study.study_name}' has no trial {number}; its trials are 0 to {len(trials) - 1}")
    return trials[number]


def _trial(t: Any) -> dict[str, Any]:
    import numpy as np

    folds = t.user_attrs.get("fold_values") or []
    return {"trial": t.number, "state": t.state.name, "model": t.params.get("model", ""), "value": _num(t.value),
            "config": {k.split(".", 1)[1]: v for k, v in t.params.items() if "." in k},
            "cv_std": _num(np.std(np.asarray(folds, dtype=float))) if len(folds) > 1 else None,
            "source": t.user_attrs.get("source", "bo" if t.params else ""), "error": t.user_attrs.get("error")}


def _param_named(words: str, names: list[str]) -> str | None:
    """The hyperparameter `words` names ("learning rate", "C", "max depth"), or None."""
    import re

    key = re.sub(r"[^0-9a-z]+", "", words.lower())
    for n in names:
        if re.sub(r"[^0-9a-z]+", "", n.lower()) == key:
            return n
    return None
