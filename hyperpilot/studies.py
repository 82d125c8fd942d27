"""Studies are Optuna studies, stored in one SQLite file under `HYPERPILOT_HOME`.

Every trial records in its user attributes where its config came from (`source`:
default, bo, llm, memory, code), the config, the metrics, its duration and any error.
A study is resumed by name: trials that were running when a process died are marked
failed and their configs queued again; completed trials are never re-run."""

from __future__ import annotations

import json
import os
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from hyperpilot.errors import StudyError
from hyperpilot.task import Task

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def home() -> Path:
    """`$HYPERPILOT_HOME`, default `~/.hyperpilot`, created on first use."""
    path = Path(os.environ.get("HYPERPILOT_HOME", "~/.hyperpilot")).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot create HYPERPILOT_HOME '{path}': {e.strerror}; set it to a writable folder") from e
    return path


def storage() -> optuna.storages.RDBStorage:
    url = os.environ.get("HYPERPILOT_STORAGE") or f"sqlite:///{home() / 'studies.db'}"
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {})


def study_dir(name: str) -> Path:
    path = home() / "studies" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_sampler(task: Task, n_done: int) -> optuna.samplers.BaseSampler:
    """The BO engine. The seed mixes in how many trials exist so a resumed study does
    not replay the random start it already tried."""
    return bo_sampler(str(task.sampler), task.seed * 100_003 + n_done, task.n_trials)


def bo_sampler(kind: str, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """Random, GP or multivariate TPE, with a random start of a third of the budget (3–10 trials)."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    n_startup = max(3, min(10, n_trials // 3))
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=n_startup)


def open_study(task: Task) -> optuna.Study:
    """Create the study for `task` or resume the one of the same name."""
    name = str(task.study_name)
    store = storage()
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(store)}
    if name in existing:
        study = optuna.load_study(study_name=name, storage=store)
        stored = study.user_attrs.get("task", {})
        for key in ("data", "target", "task_type", "metric", "models"):
            if key in stored and stored[key] != getattr(task, key):
                raise StudyError(
                    f"study '{name}' was made for {key}={stored[key]!r}, not {getattr(task, key)!r}; "
                    "pick another --study name or resume it with `hyperpilot resume NAME`"
                )
        _recover_interrupted(study)
    else:
        study = optuna.create_study(study_name=name, storage=store, direction=task.direction)
        study.set_user_attr("task", json.loads(task.model_dump_json()))
    study.sampler = make_sampler(task, len(study.trials))
    return study


def load_study(name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage())
    except KeyError:
        raise StudyError(f"no study named '{name}'; `hyperpilot studies list` shows them") from None


def stored_task(study: optuna.Study) -> Task:
    if "task" not in study.user_attrs:
        raise StudyError(f"study '{study.study_name}' was not made by hyperpilot (it has no task)")
    return Task.model_validate(study.user_attrs["task"])


def list_studies() -> list[optuna.study.StudySummary]:
    # a study whose trials never started (all still queued) has no start time: list it last
    return sorted(
        optuna.get_all_study_summaries(storage()),
        key=lambda s: (s.datetime_start is None, s.datetime_start or datetime.min),
    )


def n_finished(study: optuna.Study) -> int:
    """Trials that count against the budget (interrupted ones do not: they are re-run)."""
    return sum(not t.user_attrs.get("interrupted") for t in study.get_trials(deepcopy=False, states=FINISHED))


def n_failed(study: optuna.Study) -> int:
    """Failed trials that count against the budget (not the interrupted ones)."""
    return sum(not t.user_attrs.get("interrupted") for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, source, model, value, seconds, error, config."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "source": t.user_attrs.get("source", ""),
            "model": t.user_attrs.get("model", ""),
            "value": t.value,
            "seconds": t.user_attrs.get("seconds"),
            "error": t.user_attrs.get("error", ""),
            "config": t.user_attrs.get("config", {}),
        })
    return pd.DataFrame(rows, columns=["number", "state", "source", "model", "value", "seconds", "error", "config"])


def _recover_interrupted(study: optuna.Study) -> None:
    """Mark trials left RUNNING by a dead process as failed and queue their configs again."""
    store = study._storage  # noqa: SLF001 - Optuna exposes no public setter for a dead trial
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        store.set_trial_user_attr(t._trial_id, "error", "interrupted: the process running it stopped")  # noqa: SLF001
        store.set_trial_user_attr(t._trial_id, "interrupted", True)  # noqa: SLF001
        store.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
        attrs: dict[str, Any] = {k: v for k, v in t.user_attrs.items() if k in ("source", "rationale")}
        attrs.setdefault("source", "bo")  # killed between ask() and tagging: it was BO's
        study.enqueue_trial(t.params, user_attrs={**attrs, "retry_of": t.number})
