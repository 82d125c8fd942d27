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
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from hyperpilot import samplers
from hyperpilot.cards.model import ModelCard
from hyperpilot.core.loop import SURPLUS, count_finished, retried
from hyperpilot.errors import StudyError
from hyperpilot.task import Task

log = logging.getLogger("hyperpilot.studies")
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


def storage(url: str | None = None) -> optuna.storages.BaseStorage:
    """The study storage at `url` (default `$HYPERPILOT_STORAGE`, else `studies.db` under
    `HYPERPILOT_HOME`): any SQLAlchemy URL Optuna's `RDBStorage` takes (sqlite:///FILE,
    postgresql://USER@HOST:PORT/DB, mysql+pymysql://…; several workers on other machines
    can share one study there), or a journal file — `journal:PATH`, or a path ending in
    .log or .jsonl — for a shared file system without a database server (no heartbeats:
    a trial whose process died there stays RUNNING). Any problem opening it is one
    `StudyError` line."""
    url = url or os.environ.get("HYPERPILOT_STORAGE") or f"sqlite:///{home() / 'studies.db'}"
    journal = _journal_path(url)
    if journal is not None:
        try:
            Path(journal).expanduser().parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(Path(journal).expanduser())))
        except (OSError, ValueError) as e:
            raise StudyError(f"cannot use the journal file {journal}: {getattr(e, 'strerror', None) or e}") from None
    if "://" not in url:
        raise StudyError(f"--storage {url!r} is neither a database URL (e.g. sqlite:///studies.db, "
                         "postgresql://user@host:5432/db) nor a journal file (journal:PATH, or a .log/.jsonl path)")
    beat = heartbeat_seconds()
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"creator": _sqlite(url[len("sqlite:///"):])} if url.startswith("sqlite:///") else {},
                heartbeat_interval=beat, grace_period=3 * beat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's and the drivers' errors are many; the user needs one line
            if attempt < 4 and _racing(e):  # another worker is creating the tables of a new database right now
                time.sleep(0.2 * (attempt + 1))
                continue
            raise StudyError(f"cannot open the study storage {_safe_url(url)}: {_storage_reason(e)}") from None
    raise AssertionError("unreachable")


def _racing(e: BaseException) -> bool:
    text = str(e).lower()
    return "already exists" in text or "duplicate key" in text or type(e).__name__ == "IntegrityError"


def describe(url: str | None = None) -> str:
    """Where the studies of `url` live, for people: the storage URL without its password,
    or HYPERPILOT_HOME for the default."""
    url = url or os.environ.get("HYPERPILOT_STORAGE")
    return _safe_url(url) if url else str(home())


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url[len("journal:"):]
    if "://" not in url and url.endswith((".log", ".jsonl")):
        return url
    return None


def _safe_url(url: str) -> str:
    """`url` without its password."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _storage_reason(e: BaseException) -> str:
    """Why a storage URL failed, in words (no SQLAlchemy traceback)."""
    name = type(e).__name__
    text = str(e).strip().splitlines()[0] if str(e).strip() else name
    text = re.sub(r"\s*\(Background on this error at:.*$", "", text)
    if name == "NoSuchModuleError":
        kind = text.rsplit(":", 1)[-1].strip()
        return f"unknown database kind {kind!r} (e.g. sqlite, postgresql, mysql+pymysql)"
    if isinstance(e, ImportError):
        cause = e.__cause__ if isinstance(e.__cause__, ImportError) else e
        module = getattr(cause, "name", None) or text
        hint = {"psycopg": " (pip install 'psycopg[binary]')", "psycopg2": " (pip install psycopg2-binary)",
                "pymysql": " (pip install pymysql)"}.get(str(module).split(".")[0], "")
        return f"its database driver is not installed: no module {module!r}{hint}"
    if name == "ArgumentError":
        return f"not a database URL ({text})"
    if name == "OperationalError":
        return "cannot connect: " + re.sub(r"^[(][^)]*[)]\s*", "", text)
    return f"{name}: {text}"


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


def save_data(name: str, frame: pd.DataFrame) -> Path:
    """Write a table given in memory (`Task.frame`) into study `name`'s folder, once per
    content (`data-HASH.parquet`; CSV where Parquet cannot hold a column): the path a
    stored task reads, so `resume` finds the data, and a study reopened with other data
    is refused like any other change of `data`."""
    h = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest = h.hexdigest()[:16]
    folder = study_dir(name)
    for existing in (folder / f"data-{digest}.parquet", folder / f"data-{digest}.csv"):
        if existing.is_file():
            return existing
    path = folder / f"data-{digest}.parquet"
    try:
        frame.to_parquet(path, index=False)
    except (ImportError, ValueError, TypeError, NotImplementedError) as e:  # pyarrow: a column of mixed types, …
        path.unlink(missing_ok=True)
        path = path.with_suffix(".csv")
        frame.to_csv(path, index=False)
        log.info("the table is kept as CSV (Parquet cannot hold it: %s); column types may change on resume", e)
    return path


def make_sampler(task: Task, n_done: int, parallel: bool = False) -> optuna.samplers.BaseSampler:
    """The BO engine of `task` (a registered name, `core.samplers`). The seed mixes in how
    many trials exist so a resumed study does not replay the random start it already tried.
    Without a trial cap (a time budget alone) the sampler plans as for 30 trials."""
    planned = task.n_trials if task.n_trials is not None else 30
    return samplers.make_sampler(str(task.sampler), task.seed * 100_003 + n_done, planned, parallel)


PRUNER_MIN_EPOCHS = 2  # Hyperband / successive halving: the first rung, in epochs
PRUNER_REDUCTION = 3  # keep the best third at each rung


def make_pruner(cards: Iterable[ModelCard]) -> optuna.pruners.BasePruner:
    """The pruner the study's model cards name (`ModelCard.pruner`), used when the user
    gives none. Only when every card names the same one — their models all report after
    every epoch — with the largest `epochs` of the cards as Hyperband's maximum resource;
    otherwise none: a pruner would compare a score after an epoch with one after a fold."""
    cards = list(cards)
    names = {c.pruner for c in cards}
    name = names.pop() if len(names) == 1 else None
    if name is None:
        return optuna.pruners.NopPruner()
    epochs = [int(c.space["epochs"].high) for c in cards if "epochs" in c.space.names]  # type: ignore[union-attr, arg-type]
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=PRUNER_MIN_EPOCHS, max_resource=max(epochs, default="auto"),
                                              reduction_factor=PRUNER_REDUCTION)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=PRUNER_MIN_EPOCHS, reduction_factor=PRUNER_REDUCTION)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=PRUNER_MIN_EPOCHS)


def open_study(task: Task, url: str | None = None) -> optuna.Study:
    """Create the study for `task` or resume the one of the same name (in the storage at
    `url`, see `storage`); a study another worker is creating at the same time is joined."""
    name = str(task.study_name)
    store = storage(url)
    if name in optuna.get_all_study_names(store):
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
        study = optuna.create_study(study_name=name, storage=store, direction=task.direction, load_if_exists=True)
        study.set_user_attr("task", json.loads(task.model_dump_json()))
    return study


def load_study(name: str, url: str | None = None) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage(url))
    except KeyError:
        raise StudyError(f"no study named '{name}'; `hyperpilot studies list` shows them") from None


def stored_task(study: optuna.Study) -> Task:
    if "task" not in study.user_attrs:
        raise StudyError(f"study '{study.study_name}' was not made by hyperpilot (it has no task)")
    return Task.model_validate(study.user_attrs["task"])


def set_run_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Store how the latest run of `study` ran (LLM spec, rate, sampler, memory, workers,
    sandbox and trial limits; see `Assistant.run_settings`), for `hyperpilot resume`."""
    study.set_user_attr("run", settings)


def run_settings(study: optuna.Study) -> dict[str, Any]:
    """The run settings stored with `study` (empty for a study made before they were stored)."""
    stored = study.user_attrs.get("run")
    return dict(stored) if isinstance(stored, dict) else {}


def list_studies(url: str | None = None) -> list[optuna.study.StudySummary]:
    # a study whose trials never started (all still queued) has no start time: list it last
    return sorted(
        optuna.get_all_study_summaries(storage(url)),
        key=lambda s: (s.datetime_start is None, s.datetime_start or datetime.min),
    )


def n_finished(study: optuna.Study) -> int:
    """Trials that count against the budget (ones whose process died do not: they are re-run)."""
    return count_finished(study.get_trials(deepcopy=False))


def n_failed(study: optuna.Study) -> int:
    """Failed trials that count against the budget."""
    trials = study.get_trials(deepcopy=False)
    dead = retried(trials)
    return sum(t.state == TrialState.FAIL and t.number not in dead and not t.user_attrs.get(SURPLUS) for t in trials)


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, source, model, value (the mean over CV folds), cv_std
    (their standard deviation, ddof=0 as scikit-learn's `std_test_score`; complete trials only),
    seconds, error, config."""
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
            "cv_std": _fold_std(t),
            "seconds": t.user_attrs.get("seconds"),
            "error": t.user_attrs.get("error", died),
            "config": {k.split(".", 1)[1]: v for k, v in t.params.items() if "." in k},
        })
    return pd.DataFrame(rows, columns=["number", "state", "source", "model", "value", "cv_std", "seconds", "error",
                                       "config"])


def _fold_std(t: optuna.trial.FrozenTrial) -> float | None:
    folds = t.user_attrs.get("fold_values") or []
    if t.state != TrialState.COMPLETE or len(folds) < 2:
        return None
    return float(np.std(np.asarray(folds, dtype=float)))
