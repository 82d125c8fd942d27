"""Studies are Optuna studies, stored in one SQLite file under `HYPERPILOT_HOME`.

Every trial records in its user attributes where its config came from (`source`:
default, llm, memory, code; absent for BO's own), why (`rationale`), its duration
(`seconds`), the per-fold values (`fold_values`) and any error; the model and config are
its params (`trial_table`). A study is resumed by name: the running loop records a
heartbeat per trial in flight (`heartbeat`); a trial whose heartbeat stopped (its process
died) is failed by Optuna's `fail_stale_trials` and queued again by its
`RetryHeartbeatStaleTrialCallback` when the study is opened (the retry's system attribute
`retry_history` names the dead trial, `core.loop.retried`, and the dead trial no longer
counts against the budget);
completed trials are never re-run."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from hyperpilot import samplers
from hyperpilot.core.loop import count_finished, retried
from hyperpilot.errors import StudyError
from hyperpilot.task import Task

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def home() -> Path:
    """`$HYPERPILOT_HOME`, default `~/.hyperpilot`, created on first use."""
    path = Path(os.environ.get("HYPERPILOT_HOME", "~/.hyperpilot")).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot create HYPERPILOT_HOME '{path}': {e.strerror}; set it to a writable folder") from e
    return path


def heartbeat_seconds() -> int:
    """How often a running trial's heartbeat is written (`$HYPERPILOT_HEARTBEAT`, default 10 s);
    a trial silent for three times that is taken as dead when the study is next opened."""
    return max(1, int(os.environ.get("HYPERPILOT_HEARTBEAT", "10")))


def storage() -> optuna.storages.RDBStorage:
    url = os.environ.get("HYPERPILOT_STORAGE") or f"sqlite:///{home() / 'studies.db'}"
    beat = heartbeat_seconds()
    return optuna.storages.RDBStorage(
        url, engine_kwargs={"creator": _sqlite(url[len("sqlite:///"):])} if url.startswith("sqlite:///") else {},
        heartbeat_interval=beat, grace_period=3 * beat,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
    )


def _sqlite(path: str) -> Any:
    """Connections to a SQLite study file in WAL mode with `synchronous=NORMAL`: a commit no
    longer waits for the disk (a crashed process loses nothing; only a power cut may lose the
    last trials). Each trial's handful of writes cost ~3 ms apiece otherwise
    (docs/benchmarks.md, "Core loop")."""
    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(path, timeout=60, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    return connect


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> contextlib.AbstractContextManager[Any]:
    """While open, a thread records `trial`'s heartbeat in the study's storage (what
    `Study.optimize` does for its own trials; the ask-and-tell loop does it here)."""
    from optuna.storages._heartbeat import get_heartbeat_thread  # the one Optuna helper for ask/tell loops

    return get_heartbeat_thread(trial._trial_id, study._storage)  # type: ignore[return-value]  # noqa: SLF001


def study_dir(name: str) -> Path:
    path = home() / "studies" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_sampler(task: Task, n_done: int, parallel: bool = False) -> optuna.samplers.BaseSampler:
    """The BO engine of `task` (a registered name, `core.samplers`). The seed mixes in how
    many trials exist so a resumed study does not replay the random start it already tried."""
    return samplers.make_sampler(str(task.sampler), task.seed * 100_003 + n_done, task.n_trials, parallel)


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
        optuna.storages.fail_stale_trials(study)
    else:
        study = optuna.create_study(study_name=name, storage=store, direction=task.direction)
        study.set_user_attr("task", json.loads(task.model_dump_json()))
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
    """Trials that count against the budget (ones whose process died do not: they are re-run)."""
    return count_finished(study.get_trials(deepcopy=False))


def n_failed(study: optuna.Study) -> int:
    """Failed trials that count against the budget."""
    trials = study.get_trials(deepcopy=False)
    dead = retried(trials)
    return sum(t.state == TrialState.FAIL and t.number not in dead for t in trials)


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, source, model, value, seconds, error, config."""
    trials = study.get_trials(deepcopy=False)
    dead = retried(trials)
    rows = []
    for t in trials:
        died = f"its process died; re-run as trial {dead[t.number]}" if t.number in dead else ""
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "source": t.user_attrs.get("source", "bo" if t.params else ""),
            "model": t.params.get("model", ""),
            "value": t.value,
            "seconds": t.user_attrs.get("seconds"),
            "error": t.user_attrs.get("error", died),
            "config": {k.split(".", 1)[1]: v for k, v in t.params.items() if "." in k},
        })
    return pd.DataFrame(rows, columns=["number", "state", "source", "model", "value", "seconds", "error", "config"])
