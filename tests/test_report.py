"""The study report from real solves: the trial table with hyperparameters and CV spread
(report.md and trials.csv), the per-model comparison, Optuna's own plots with importances
that equal Optuna's evaluator, versions in report.json; and the edge cases (one complete
trial, every parameter constant, outliers in the history) as notes instead of plots."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.image import imread
from optuna.trial import TrialState
from PIL import Image
from threadpoolctl import threadpool_limits

from hyperpilot import Assistant, Task, studies
from hyperpilot.core.types import Result
from hyperpilot.prompts import fmt_config
from hyperpilot.report import accounting_rows, write_report
from hyperpilot.report.plots import plot_history, robust_range
from hyperpilot.report.tables import TRIAL_COLUMNS
from hyperpilot.sandbox import InProcessExecutor

VERSION_KEYS = {"hyperpilot", "python", "optuna", "scikit-learn", "numpy", "pandas", "torch", "chromadb", "platform"}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


def _solve(models: list[str], n_trials: int) -> tuple[Result, optuna.Study]:
    task = Task(data="sklearn:iris", models=models, n_trials=n_trials, cv_folds=2, seed=4)
    result = Assistant(executor=InProcessExecutor(), llm="none", memory=False).solve(task)
    return result, studies.load_study(result.study_name)


def _images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def _check_png(path: Path) -> None:
    assert path.is_file(), path
    with Image.open(path) as image:
        image.verify()
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50


def test_report_of_a_two_model_solve() -> None:
    result, study = _solve(["knn", "logistic_regression"], 7)
    folder = result.report_path.parent
    md = result.report_path.read_text()
    trials = study.get_trials(deepcopy=False)
    assert {t.state for t in trials} == {TrialState.COMPLETE}

    # the trial table: hyperparameters (card prefixes stripped) and the spread over folds
    assert "| # | state | source | model | hyperparameters | mean CV | std CV | seconds | error |" in md
    for t in trials:
        model = t.params["model"]
        config = {k.removeprefix(f"{model}."): v for k, v in t.params.items() if k != "model"}
        std = np.std(t.user_attrs["fold_values"])
        assert f"| {t.number} | COMPLETE | {t.user_attrs.get('source', 'bo')} | {model} | {fmt_config(config)} | " \
               f"{t.value:.4f} | {std:.4f} |" in md
    csv = pd.read_csv(folder / "trials.csv")
    assert list(csv.columns[:len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert {"knn.n_neighbors", "knn.p", "logistic_regression.C"} <= set(csv.columns)
    assert list(csv.number) == [t.number for t in trials]
    assert np.allclose(csv.cv_mean, [t.value for t in trials])
    assert np.allclose(csv.cv_std, [np.std(t.user_attrs["fold_values"]) for t in trials])
    knn = csv[csv.model == "knn"]
    assert list(knn["knn.n_neighbors"]) == [t.params["knn.n_neighbors"] for t in trials if t.params["model"] == "knn"]
    assert knn["logistic_regression.C"].isna().all()

    # one row per model, best first
    report = json.loads((folder / "report.json").read_text())
    rows = report["models"]
    assert {r["model"] for r in rows} == {"knn", "logistic_regression"}
    assert rows[0]["model"] == result.best_model and rows[0]["best_cv"] == pytest.approx(result.cv_score)
    assert rows[0]["best_cv"] >= rows[1]["best_cv"]
    for r in rows:
        mine = [t for t in trials if t.params["model"] == r["model"]]
        assert r["trials"] == len(mine) and r["failed"] == r["pruned"] == 0
        assert r["median_cv"] == pytest.approx(np.median([t.value for t in mine]))
        assert f"| {r['model']} | {r['trials']} | 0 | 0 | {r['best_cv']:.4f} |" in md
    assert "| model | trials | failed | pruned | best CV | std | median CV | best config |" in md

    # every figure named in the report is there and is a real image; Optuna's plots per model
    images = _images(md)
    assert images[0] == "history.png" and "intermediate.png" in images
    assert sorted(report["figures"]) == sorted(images)
    for name in images:
        _check_png(folder / name)

    # importances: Optuna's own evaluator over each model's complete trials (varying params)
    for model in ("knn", "logistic_regression"):
        mine = [t for t in trials if t.params["model"] == model]
        names = [k for k in mine[0].params if k != "model" and len({t.params[k] for t in mine}) > 1]
        subset = optuna.create_study(direction=study.direction)
        subset.add_trials(mine)
        expected = optuna.importance.get_param_importances(subset, params=names)
        shown = report["importances"][model]["params"]
        assert set(shown) == {k.removeprefix(f"{model}.") for k in expected}
        for key, value in expected.items():
            name = key.removeprefix(f"{model}.")
            assert shown[name] == pytest.approx(value)
            assert f"`{name}` {value:.3f}" in md
        assert {f"importance_{model}.png", f"parallel_{model}.png", f"slice_{model}.png"} <= set(images)

    # versions and run settings
    versions = report["versions"]
    assert VERSION_KEYS <= set(versions)
    assert versions["optuna"] == optuna.__version__ and versions["torch"] == importlib.metadata.version("torch")
    assert versions["python"].count(".") == 2 and versions["platform"]
    assert report["run_settings"] == studies.run_settings(study)


def test_one_complete_trial_and_constant_params_give_notes_not_plots() -> None:
    result, study = _solve(["knn"], 1)
    folder = result.report_path.parent
    md = result.report_path.read_text()
    assert "1 complete trial(s): importances and plots need at least 2." in md
    assert not list(folder.glob("importance_*.png")) and not list(folder.glob("slice_*.png"))
    for name in _images(md):
        _check_png(folder / name)

    # two more trials of the very same config: no parameter varied
    first = study.trials[0]
    (folder / "slice_gone.png").write_bytes(b"stale")
    for value in (0.9, 0.91):
        study.add_trial(optuna.trial.create_trial(params=first.params, distributions=first.distributions, value=value,
                                                  user_attrs={"source": "user", "fold_values": [value, value]}))
    write_report(dataclasses.replace(result, trials=studies.trial_table(study)), folder, study)
    md = result.report_path.read_text()
    assert "no parameter varied: no importances or plots." in md
    assert "constant in every complete trial (left out): n_neighbors=" in md
    assert not list(folder.glob("importance_*.png")) and not (folder / "slice_gone.png").exists()
    report = json.loads((folder / "report.json").read_text())
    assert report["importances"]["knn"]["params"] == {} and report["models"][0]["trials"] == 3
    for name in _images(md):
        _check_png(folder / name)

    # varied configs and one outlier: plots again, the outlier clipped in Optuna's plots too
    for k, value in [(3, 0.93), (9, 0.95), (15, 0.94), (21, 0.92), (27, 0.05)]:
        params = {**first.params, "knn.n_neighbors": k}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=first.distributions, value=value,
                                                  user_attrs={"fold_values": [value, value]}))
    write_report(dataclasses.replace(result, trials=studies.trial_table(study)), folder, study)
    md = result.report_path.read_text()
    assert "`n_neighbors` " in md and "values clipped to" in md and "(1 trial(s) outside)" in md
    assert "1 trial(s) below the plotted range" in md
    assert {"importance_knn.png", "parallel_knn.png", "slice_knn.png"} <= set(_images(md))
    for name in _images(md):
        _check_png(folder / name)


def test_history_keeps_its_range_when_a_trial_is_an_outlier(tmp_path: Path) -> None:
    values = [0.90, 0.93, 0.95, 0.94, 0.92, 0.96, 0.95, 0.333]
    trials = pd.DataFrame({"number": range(10), "state": ["COMPLETE"] * 8 + ["FAIL", "PRUNED"],
                           "model": ["svm", "knn"] * 5, "value": values + [None, None]})
    lo, hi = robust_range(values, maximize=True)
    assert 0.333 < lo < 0.90 and hi == 0.96
    note = plot_history(trials, ["svm", "knn"], "accuracy", True, "t", tmp_path / "h.png")
    assert note.startswith("1 trial(s) below the plotted range") and "worst 0.333" in note
    _check_png(tmp_path / "h.png")
    assert robust_range([3.0, 1.0, 1.2, 1.1, 1.3, 50.0], maximize=False)[1] < 50.0  # minimise: the high side


def test_the_llm_free_text_summary_is_not_reported() -> None:
    stats = {"calls": 2, "seconds": 1.0, "prompt_tokens": 10, "completion_tokens": 5, "valid": 2, "invalid": 0,
             "clipped": 0, "timeouts": 0, "unavailable": 0, "fallbacks": 0}
    rows = dict(accounting_rows({"backend": "embedded", "model": "m", "rate": 0.25, "proposed": 1, "used": 1,
                                 "stats": stats, "summary": "C is the only thing that matters", "facts": "x"}))
    assert "calls" in rows and not any("summary" in k or "what mattered" in k for k in rows)
    assert "C is the only thing" not in " ".join(rows.values())
