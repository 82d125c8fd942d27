"""The report's figures, as PNGs in the study folder: the optimisation history (one colour
per model, a robust y-range so a few very poor trials do not flatten it) and Optuna's own
plots (`optuna.visualization.matplotlib`): per model, the parameter importances (Optuna's
`get_param_importances` with its default evaluator; the report's text shows the same
numbers), parallel coordinates and slice; for the study, the intermediate values (the
running CV mean after each fold). Agg backend; every figure is closed."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

PLOT_FILES = ("history.png", "intermediate.png", "importance_*.png", "parallel_*.png", "slice_*.png")
MAX_MODEL_PLOTS = 4  # per-model figures for the best few models; the rest get importances as text only


@dataclass
class Figure:
    file: str  # a PNG in the study folder
    title: str
    note: str = ""


@dataclass
class ModelAnalysis:
    """What the report shows for one model: Optuna's importances over its complete trials
    (constant parameters left out), its figures, and notes for what was skipped and why."""

    model: str
    n_complete: int
    params: list[str]  # the parameters that varied (card names)
    importances: dict[str, float] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def colours(models: list[str]) -> dict[str, str]:
    """One colour per model, stable across the report's figures."""
    return {m: f"C{i % 10}" for i, m in enumerate(models)}


def robust_range(values: Any, maximize: bool) -> tuple[float, float]:
    """A y-range that keeps the best values and the bulk of the trials: from the best value
    to the median and three times as far again (at least 5% of the full range beyond the
    median), never past the data. Points outside it are drawn at its edge."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if v.size < 5:
        return lo, hi
    median = float(np.median(v))
    q1, q3 = np.quantile(v, [0.25, 0.75])
    spread = max((hi if maximize else median) - (median if maximize else lo), float(q3 - q1), 0.05 * (hi - lo))
    if maximize:
        return max(lo, median - 3 * spread), hi
    return lo, min(hi, median + 3 * spread)


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's matplotlib plots set the ggplot style globally and warn (experimental,
    too few trials): keep both to this block."""
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        yield


def _save(axes: Any, path: Path, title: str = "", tight: bool = False) -> None:
    many = isinstance(axes, np.ndarray)
    ax = np.atleast_1d(axes).flat[0]
    fig = ax.figure
    try:
        if title:
            fig.suptitle(title) if many else ax.set_title(title)
        fig.savefig(path, dpi=80, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)


def plot_history(trials: pd.DataFrame, models: list[str], metric: str, maximize: bool, title: str,
                 path: Path) -> str:
    """Every complete trial coloured by model, the best-so-far line, failed and pruned trials
    as grey crosses at the worse edge; returns a note on what was drawn at the range's edge."""
    done = trials[trials.state == "COMPLETE"].sort_values("number")
    lo, hi = robust_range(done.value, maximize)
    pad = 0.05 * (hi - lo) or 0.01 * max(abs(hi), 1.0)
    palette = colours(models + sorted(set(done.model) - set(models)))
    with _quiet():
        fig, ax = plt.subplots(figsize=(7, 4), dpi=80)
        note = ""
        for model, group in done.groupby("model", sort=False):
            values = group.value.astype(float)
            inside = (values >= lo) & (values <= hi)
            ax.scatter(group.number[inside], values[inside], s=22, color=palette[str(model)], label=str(model))
            if (~inside).any():
                ax.scatter(group.number[~inside], values[~inside].clip(lo, hi), s=30, color=palette[str(model)],
                           marker="v" if maximize else "^", alpha=0.7)
        clipped = done[(done.value < lo) | (done.value > hi)]
        if len(clipped):
            worst = clipped.value.min() if maximize else clipped.value.max()
            note = (f"{len(clipped)} trial(s) {'below' if maximize else 'above'} the plotted range "
                    f"({lo:.4g} to {hi:.4g}) are drawn at its edge as triangles (worst {worst:.4g}).")
        if len(done):
            best = done.value.cummax() if maximize else done.value.cummin()
            ax.step(done.number, best, where="post", color="black", linewidth=1.2, label="best so far")
        bad = trials[trials.state.isin(["FAIL", "PRUNED"])]
        if len(bad):
            ax.scatter(bad.number, [lo - pad / 2 if maximize else hi + pad / 2] * len(bad), marker="x", s=20, color="grey",
                       label=f"failed / pruned ({len(bad)})")
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("trial")
        ax.set_ylabel(f"CV {metric}")
        ax.set_title(title)
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        _save(ax, path)
    return note


def model_study(study: optuna.Study, model: str, clip: tuple[float, float] | None = None) -> optuna.Study:
    """An in-memory study holding `model`'s complete trials with its parameters under their
    card names (`C`, not `svm.C`): they are then not conditional, which Optuna's importance
    evaluators and plots need. `clip` limits the values (for plots only)."""
    prefix = f"{model}."
    lo, hi = clip or (-np.inf, np.inf)
    copy = optuna.create_study(direction=study.direction)
    copy.add_trials([
        optuna.trial.create_trial(
            params={k[len(prefix):]: v for k, v in t.params.items() if k.startswith(prefix)},
            distributions={k[len(prefix):]: d for k, d in t.distributions.items() if k.startswith(prefix)},
            value=min(max(float(t.value), lo), hi), intermediate_values=t.intermediate_values)  # type: ignore[arg-type]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.params.get("model") == model
    ])
    return copy


def analyse_model(study: optuna.Study, model: str) -> tuple[optuna.Study, ModelAnalysis]:
    """Optuna's importances over `model`'s complete trials, or a note why there are none."""
    copy = model_study(study, model)
    done = copy.trials
    names = sorted({k for t in done for k in t.params})
    varying = [k for k in names if len({repr(t.params.get(k)) for t in done}) > 1]
    out = ModelAnalysis(model, len(done), varying)
    constant = [k for k in names if k not in varying]
    if len(done) < 2:
        out.notes.append(f"{len(done)} complete trial(s): importances and plots need at least 2.")
        return copy, out
    if constant:
        out.notes.append("constant in every complete trial (left out): "
                         + ", ".join(f"{k}={done[0].params.get(k)}" for k in constant))
    if not varying:
        out.notes.append("no parameter varied: no importances or plots.")
        return copy, out
    if len(done) < 10:
        out.notes.append(f"from {len(done)} trials only: a rough guide.")
    with _quiet():
        out.importances = dict(optuna.importance.get_param_importances(copy, params=varying))
    return copy, out


def plot_model(study: optuna.Study, copy: optuna.Study, analysis: ModelAnalysis, folder: Path, metric: str,
               maximize: bool) -> None:
    """Optuna's importance plot of `copy` (`model_study`: the numbers in the text), and its
    parallel-coordinate and slice plots with the values clipped to a robust range."""
    model, params = analysis.model, analysis.params
    stem = re.sub(r"[^\w.-]", "_", model)
    values = [float(t.value) for t in copy.trials]  # type: ignore[arg-type]
    lo, hi = robust_range(values, maximize)
    clipped = sum(not lo <= v <= hi for v in values)
    shown, name, note = copy, f"CV {metric}", ""
    if clipped:
        shown, name = model_study(study, model, (lo, hi)), f"CV {metric} (clipped)"
        note = f"values clipped to {lo:.4g} to {hi:.4g} ({clipped} trial(s) outside)"
    plots: list[tuple[str, str, Callable[[], Any], str]] = [
        (f"importance_{stem}.png", "parameter importances",
         lambda: optuna_plots.plot_param_importances(copy, params=params), ""),
        (f"parallel_{stem}.png", "parallel coordinates",
         lambda: optuna_plots.plot_parallel_coordinate(shown, params=params, target_name=name), note),
        (f"slice_{stem}.png", "slice", lambda: optuna_plots.plot_slice(shown, params=params, target_name=name), note),
    ]
    for file, title, draw, caption in plots:
        with _quiet():  # the parallel plot's rotated labels need the tight box
            _save(draw(), folder / file, f"{model}: {title}", tight=file.startswith("parallel_"))
        analysis.figures.append(Figure(file, f"{model}: {title}", caption))


def plot_intermediate(study: optuna.Study, path: Path, maximize: bool) -> Figure | None:
    """Optuna's intermediate-values plot (the running CV mean after each fold, one line per
    trial), when any trial reported two or more steps; None otherwise."""
    trials = study.get_trials(deepcopy=False)
    steps = [v for t in trials if len(t.intermediate_values) >= 2 for v in t.intermediate_values.values()]
    if not steps:
        return None
    lo, hi = robust_range(steps, maximize)
    pad = 0.05 * (hi - lo) or 0.01 * max(abs(hi), 1.0)
    with _quiet():
        ax = optuna_plots.plot_intermediate_values(study)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()  # one entry per trial: unreadable past a few
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("fold")
        ax.set_ylabel("running CV mean")
        _save(ax, path)
    return Figure(path.name, "intermediate values (running CV mean per fold, one line per trial)")


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Drop figures a previous report of this study wrote and this one did not."""
    for pattern in PLOT_FILES:
        for path in folder.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)
