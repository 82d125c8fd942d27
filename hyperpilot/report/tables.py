"""The report's tables: every trial with its hyperparameters and CV spread (report.md and
trials.csv), one row per model tried, and the versions of the libraries that ran the study."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from hyperpilot.core.loop import retried
from hyperpilot.prompts import fmt_config

TRIAL_COLUMNS = ["number", "state", "source", "model", "params", "cv_mean", "cv_std", "seconds", "error"]
VERSION_PACKAGES = ("hyperpilot", "optuna", "scikit-learn", "numpy", "pandas", "scipy", "torch", "chromadb", "matplotlib")


def trials_frame(table: pd.DataFrame) -> pd.DataFrame:
    """`studies.trial_table` as trials.csv holds it: the fixed columns (`params` is the
    compact `name=value` text, card prefixes stripped), then one column per `MODEL.PARAM`."""
    rows, not_int = [], set()
    for r in table.itertuples():
        config = r.config if isinstance(r.config, dict) else {}
        not_int |= {f"{r.model}.{k}" for k, v in config.items() if not isinstance(v, int) or isinstance(v, bool)}
        rows.append({
            "number": r.number, "state": r.state, "source": r.source, "model": r.model,
            "params": fmt_config(config), "cv_mean": r.value, "cv_std": r.cv_std, "seconds": r.seconds,
            "error": r.error or "",
            **{f"{r.model}.{k}": v for k, v in config.items()},
        })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    extra = sorted(c for c in frame.columns if c not in TRIAL_COLUMNS)
    for column in set(extra) - not_int:  # an int parameter stays an int beside another model's blanks
        frame[column] = frame[column].astype("Int64")
    return frame[TRIAL_COLUMNS + extra]


def model_rows(study: optuna.Study, models: list[str]) -> list[dict[str, Any]]:
    """One row per model tried: trials that count (complete, failed, pruned; a trial whose
    process died is re-run and not counted), best CV and its fold std, median CV, the best
    trial and config; sorted best first (models with no complete trial last)."""
    trials = study.get_trials(deepcopy=False)
    dead = retried(trials)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    rows = []
    tried = [m for m in models if any(t.params.get("model") == m for t in trials)]
    tried += sorted({str(t.params["model"]) for t in trials if "model" in t.params} - set(tried))
    for model in tried:
        mine = [t for t in trials if t.params.get("model") == model and t.number not in dead]
        done = [t for t in mine if t.state == TrialState.COMPLETE]
        best = (max if maximize else min)(done, key=lambda t: float(t.value)) if done else None  # type: ignore[arg-type]
        folds = best.user_attrs.get("fold_values", []) if best else []
        rows.append({
            "model": model,
            "trials": sum(t.state.is_finished() for t in mine),
            "failed": sum(t.state == TrialState.FAIL for t in mine),
            "pruned": sum(t.state == TrialState.PRUNED for t in mine),
            "best_cv": float(best.value) if best else None,  # type: ignore[arg-type]
            "best_std": float(np.std(np.asarray(folds, dtype=float))) if len(folds) >= 2 else None,
            "median_cv": float(np.median([float(t.value) for t in done])) if done else None,  # type: ignore[arg-type]
            "best_trial": best.number if best else None,
            "best_config": {k.split(".", 1)[1]: v for k, v in best.params.items() if "." in k} if best else {},
        })
    sign = -1.0 if maximize else 1.0
    return sorted(rows, key=lambda r: (r["best_cv"] is None, sign * (r["best_cv"] or 0.0)))


def versions() -> dict[str, str]:
    """Python, the platform and the installed versions of hyperpilot and its key libraries
    (read from the package metadata: nothing is imported)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cell(value: Any, digits: int = 4) -> str:
    """A Markdown table cell: numbers rounded, missing values empty, no `|` or newlines."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "/").replace("\n", " ")


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
