"""The study report (the one report writer): report.md for people, report.json and
trials.csv for programs, and PNGs beside them: the optimisation history (one colour per
model) and Optuna's own plots (importances, parallel coordinates and slice per model; the
intermediate values). `tables` builds the tables, `plots` the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperpilot import studies
from hyperpilot.cards import DatasetCard
from hyperpilot.core.types import Result
from hyperpilot.prompts import fmt_config
from hyperpilot.report.plots import (
    MAX_MODEL_PLOTS,
    Figure,
    ModelAnalysis,
    analyse_model,
    plot_history,
    plot_intermediate,
    plot_model,
    remove_stale,
)
from hyperpilot.report.programs import program_rows, program_summary
from hyperpilot.report.tables import cell, markdown, model_rows, trials_frame, versions

__all__ = ["accounting", "accounting_rows", "program_rows", "program_summary", "source_ranks", "write_report"]


def write_report(result: Result, folder: Path, study: optuna.Study) -> None:
    """Write report.md, report.json, trials.csv and the figures into `folder`."""
    task = result.task
    maximize = task.direction == "maximize"
    history_note = plot_history(result.trials, list(task.models), str(task.metric), maximize, result.study_name,
                                folder / "history.png")
    models = model_rows(study, list(task.models))
    analyses = []
    for i, row in enumerate(models):
        copy, analysis = analyse_model(study, row["model"])
        if analysis.importances and i < MAX_MODEL_PLOTS:
            plot_model(study, copy, analysis, folder, str(task.metric), maximize)
        elif analysis.importances:
            analysis.notes.append(f"plots are drawn for the {MAX_MODEL_PLOTS} best models only.")
        analyses.append(analysis)
    intermediate = plot_intermediate(study, folder / "intermediate.png", maximize)
    figures = [f for a in analyses for f in a.figures] + ([intermediate] if intermediate else [])
    remove_stale(folder, {"history.png", *(f.file for f in figures)})

    trials = trials_frame(result.trials)
    trials.to_csv(folder / "trials.csv", index=False)
    llm, llm_md = _llm_section(study)
    program, program_md = _program_section(study, folder, result.best_model)
    payload: dict[str, Any] = {
        "study": result.study_name,
        "task": json.loads(task.model_dump_json()),
        "best": {"model": result.best_model, "config": result.best_config, "cv_score": result.cv_score},
        "test_score": result.test_score,
        "n_trials": result.n_trials,
        "n_failed": result.n_failed,
        "n_pruned": result.n_pruned,
        "wall_seconds": round(result.wall_seconds, 2),
        "dataset": json.loads(result.dataset_card.model_dump_json()),
        "models": models,
        "importances": {a.model: {"n_trials": a.n_complete, "params": a.importances, "notes": a.notes} for a in analyses},
        "figures": ["history.png", *(f.file for f in figures)],
        "trials": json.loads(result.trials.to_json(orient="records")),
        "trials_csv": "trials.csv",
        "model_path": result.model_path.name,
        "llm": llm,
        "best_program": program,
        "programs": program_summary(study),
        "versions": versions(),
        "run_settings": studies.run_settings(study),
    }
    (folder / "report.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")

    config = "\n".join(f"| `{k}` | {cell(v)} |" for k, v in result.best_config.items())
    md = f"""# hyperpilot report: {result.study_name}

**Task:** {task.task_type} on `{task.data}` (target `{result.dataset_card.target}`), metric
**{task.metric}** ({task.direction}), models {', '.join(task.models)}, {task.scheme},
{task.test_size:.0%} held out, seed {task.seed}, sampler {task.sampler}.

## Result
- Best model: **{result.best_model}**
- {'Holdout' if task.validation == 'holdout' else 'Cross-validated'} {task.metric}: **{result.cv_score:.4f}**
- Held-out test {task.metric}: {"none (nothing held out)" if result.test_score is None else f"**{result.test_score:.4f}**"}
- Trials: {result.n_trials} ({result.n_failed} failed, {result.n_pruned} pruned), wall time {result.wall_seconds:.1f} s
- Model: `{result.model_path.name}` (joblib; `joblib.load(...).predict(X)`)
{_data_notes(result.dataset_card)}
| parameter | value |
|---|---|
{config}

## Models compared
Validation {task.metric} ({task.scheme}); {'one split, so no std' if task.validation == 'holdout' else "std is over the folds of the model's best trial"}.

{_models_md(models)}

## Optimisation history
![history](history.png)
{_italic(history_note)}{_intermediate_md(intermediate)}
## Hyperparameters
Importances are Optuna's `get_param_importances` (its default evaluator) over each model's
complete trials, constant parameters left out; the plots are Optuna's own.
{''.join(_analysis_md(a) for a in analyses)}{llm_md}
## Dataset
```
{result.dataset_card.to_text()}
```

## Trials
Also in `trials.csv` (one column per hyperparameter). Mean and std are over the CV folds.

{_trials_md(trials)}
{program_md}
## Versions
{', '.join(f"{k} {v}" for k, v in payload["versions"].items())}
"""
    (folder / "report.md").write_text(md, encoding="utf-8")


def _italic(text: str) -> str:
    return f"\n_{text}_\n" if text else ""


def _models_md(models: list[dict[str, Any]]) -> str:
    rows = [[r["model"], r["trials"], r["failed"], r["pruned"], r["best_cv"], r["best_std"], r["median_cv"],
             fmt_config(r["best_config"])] for r in models]
    return markdown(["model", "trials", "failed", "pruned", "best CV", "std", "median CV", "best config"], rows)


def _trials_md(trials: Any) -> str:
    rows = [[r.number, r.state, r.source, r.model, r.params, r.cv_mean, r.cv_std,
             "" if r.seconds is None or r.seconds != r.seconds else f"{r.seconds:.2f}", str(r.error)[:80]]
            for r in trials.itertuples()]
    return markdown(["#", "state", "source", "model", "hyperparameters", "mean CV", "std CV", "seconds", "error"], rows)


def _figures_md(figures: list[Figure]) -> str:
    """The images on one line (side by side where the viewer allows), then their notes."""
    notes = sorted({f.note for f in figures if f.note})
    return " ".join(f"![{f.title}]({f.file})" for f in figures) + "".join(f"\n\n_{n}_" for n in notes)


def _data_notes(card: DatasetCard) -> str:
    """The columns no model saw and the suspected leaks, as result bullets (empty if none)."""
    notes = [f"- Not used as a feature: `{c}` ({why})\n" for c, why in card.dropped.items()]
    notes += [f"- **Suspected leak:** `{c}` alone scores {v:.3f}; check that it is known at prediction time\n"
              for c, v in card.leaks.items()]
    return "".join(notes)


def _intermediate_md(f: Figure | None) -> str:
    return f"\n## Learning curves\n{_figures_md([f])}\n" if f else ""


def _analysis_md(a: ModelAnalysis) -> str:
    lines = [f"\n### {a.model} ({a.n_complete} complete trials)"]
    if a.importances:
        lines.append("importance: " + ", ".join(f"`{k}` {v:.3f}" for k, v in a.importances.items()))
    lines += [f"_{n}_" for n in a.notes]
    lines += [_figures_md(a.figures)] if a.figures else []
    return "\n\n".join(lines) + "\n"


def _llm_section(study: optuna.Study) -> tuple[dict[str, Any] | None, str]:
    """The LLM planner's accounting (stored in the study by `agent.policy`), if it took part.
    Its free-text summary is not shown (it was not checked against the measured facts), nor
    its own importance estimate (the report's come from Optuna's evaluator)."""
    info = accounting(study)
    if info is None:
        return None, ""
    info = {k: v for k, v in info.items() if k not in ("summary", "facts")}
    rows = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in accounting_rows(info))
    return info, f"\n## LLM planner\n| | |\n|---|---|\n{rows}\n"


def _program_section(study: optuna.Study, folder: Path, best_model: str) -> tuple[dict[str, Any] | None, str]:
    """The LLM-written programs (`report.programs`: counts read from the trials) and the best
    one (recorded in the study by `agent.code_proposer`), if any."""
    summary = program_summary(study)
    if summary is None:
        return None, ""
    rows = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in program_rows(summary))
    md = f"\n## Programs (code as a hyperparameter)\n| | |\n|---|---|\n{rows}\n"
    info = study.user_attrs.get("best_program")
    if not info:
        return None, md
    trial = study.trials[int(info["trial"])]
    code = str(trial.user_attrs.get("code", ""))
    (folder / "best_program.py").write_text(code, encoding="utf-8")
    note = "the best model of the study" if best_model == "custom_code" else "the best custom program (another model won)"
    md += (f"\n## Best program\n\n`{info['code_id']}` — trial {info['trial']}, value {info['value']:.4f}, {note}; "
           f"saved as `best_program.py`.\n\n```python\n{code.rstrip()}\n```\n")
    return {**info, "file": "best_program.py"}, md


def source_ranks(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Per source: complete trials, mean rank percentile (0 = best trial, 1 = worst), best value."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return {}
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ordered = sorted(done, key=lambda t: t.value, reverse=maximize)  # type: ignore[arg-type, return-value]
    pct = {t.number: i / max(1, len(ordered) - 1) for i, t in enumerate(ordered)}
    out: dict[str, dict[str, float]] = {}
    for t in ordered:
        row = out.setdefault(str(t.user_attrs.get("source", "bo")),  # no source: a BO trial
                              {"trials": 0, "mean_rank": 0.0, "best": float(t.value)})  # type: ignore[arg-type]
        row["trials"] += 1
        row["mean_rank"] += pct[t.number]
    for row in out.values():
        row["mean_rank"] = round(row["mean_rank"] / row["trials"], 3)
    return out


def accounting(study: optuna.Study) -> dict[str, Any] | None:
    """The LLM accounting of a study (None when no LLM took part), with source ranks."""
    state = study.user_attrs.get("llm")
    if not state:
        return None
    return {**state, "ranks": source_ranks(study)}


def accounting_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for the CLI table and the report: measured numbers only (the
    LLM's free-text summary is not checked against the study's facts, so it is left out)."""
    s = info["stats"]
    per_call = s["seconds"] / s["calls"] if s["calls"] else 0.0
    rows = [
        ("LLM", f"{info['backend']} · {info['model']} · rate {info['rate']:g}"),
        ("calls", f"{s['calls']} ({s['seconds']:.1f} s, {per_call:.2f} s per call)"),
        ("tokens", f"{s['prompt_tokens']} prompt + {s['completion_tokens']} completion"),
        ("answers", f"{s['valid']} valid, {s['invalid']} invalid, {s['clipped']} clipped; "
                    f"{s['timeouts']} timeouts, {s['unavailable']} unavailable, {s['fallbacks']} fell back to BO"),
        ("proposals", f"{info['proposed']} enqueued, {info['used']} run"),
    ]
    for source, r in sorted(info.get("ranks", {}).items()):
        rows.append((f"rank of {source} trials", f"{r['trials']:g} trials, mean rank {r['mean_rank']:.2f} "
                                                 f"(0 best, 1 worst), best {r['best']:.4g}"))
    if info.get("warning"):
        rows.append(("warning", str(info["warning"])[:200]))
    return rows
