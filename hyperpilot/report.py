"""The study report: Markdown for people, JSON for programs, a PNG of the optimisation
history (every trial by source, and the best-so-far line)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna
from optuna.trial import TrialState

from hyperpilot.core.types import Result

SOURCE_COLOURS = {"default": "tab:green", "bo": "tab:blue", "llm": "tab:orange", "memory": "tab:purple", "code": "tab:red"}


def write_report(result: Result, folder: Path, study: optuna.Study) -> None:
    """Write report.json, report.md and history.png into `folder` (the one report writer)."""
    task = result.task
    plot_history(result, folder / "history.png")
    llm, llm_md = _llm_section(study)
    program, program_md = _program_section(study, folder, result.best_model)
    payload: dict[str, Any] = {
        "study": result.study_name,
        "task": json.loads(task.model_dump_json()),
        "best": {"model": result.best_model, "config": result.best_config, "cv_score": result.cv_score},
        "test_score": result.test_score,
        "n_trials": result.n_trials,
        "n_failed": result.n_failed,
        "wall_seconds": round(result.wall_seconds, 2),
        "dataset": json.loads(result.dataset_card.model_dump_json()),
        "trials": json.loads(result.trials.to_json(orient="records")),
        "model_path": result.model_path.name,
        "llm": llm,
        "best_program": program,
    }
    (folder / "report.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")

    rows = ["| # | source | model | value | seconds | state / error |", "|---|---|---|---|---|---|"]
    for r in result.trials.itertuples():
        value = "" if r.value is None or (isinstance(r.value, float) and math.isnan(r.value)) else f"{r.value:.4f}"
        seconds = "" if r.seconds is None or (isinstance(r.seconds, float) and math.isnan(r.seconds)) else f"{r.seconds:.2f}"
        note = r.state if not r.error else f"{r.state}: {str(r.error)[:80]}"
        rows.append(f"| {r.number} | {r.source} | {r.model} | {value} | {seconds} | {note} |")
    config = "\n".join(f"| `{k}` | {v} |" for k, v in result.best_config.items())
    md = f"""# hyperpilot report: {result.study_name}

**Task:** {task.task_type} on `{task.data}` (target `{result.dataset_card.target}`), metric
**{task.metric}** ({task.direction}), models {', '.join(task.models)}, {task.cv_folds}-fold CV,
{task.test_size:.0%} held out, seed {task.seed}, sampler {task.sampler}.

## Result
- Best model: **{result.best_model}**
- Cross-validated {task.metric}: **{result.cv_score:.4f}**
- Held-out test {task.metric}: **{result.test_score:.4f}**
- Trials: {result.n_trials} ({result.n_failed} failed), wall time {result.wall_seconds:.1f} s
- Model: `{result.model_path.name}` (joblib; `joblib.load(...).predict(X)`)

| parameter | value |
|---|---|
{config}

## Optimisation history
![history](history.png)
{llm_md}
## Dataset
```
{result.dataset_card.to_text()}
```

## Trials
{chr(10).join(rows)}
{program_md}"""
    (folder / "report.md").write_text(md, encoding="utf-8")


def _llm_section(study: optuna.Study) -> tuple[dict[str, Any] | None, str]:
    """The LLM planner's accounting (stored in the study by `agent.policy`), if it took part."""
    info = accounting(study)
    if info is None:
        return None, ""
    rows = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in accounting_rows(info))
    return info, f"\n## LLM planner\n| | |\n|---|---|\n{rows}\n"


def _program_section(study: optuna.Study, folder: Path, best_model: str) -> tuple[dict[str, Any] | None, str]:
    """The best LLM-written program (recorded in the study by `agent.code_proposer`), if any."""
    info = study.user_attrs.get("best_program")
    if not info:
        return None, ""
    trial = study.trials[int(info["trial"])]
    code = str(trial.user_attrs.get("code", ""))
    (folder / "best_program.py").write_text(code, encoding="utf-8")
    note = "the best model of the study" if best_model == "custom_code" else "the best custom program (another model won)"
    md = (f"\n## Best program\n\n`{info['code_id']}` — trial {info['trial']}, value {info['value']:.4f}, {note}; "
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
    """(label, value) rows for the CLI table and the report."""
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
    if info.get("facts"):
        rows.append(("what mattered (measured)", str(info["facts"])))
    if info.get("summary"):
        rows.append(("summary (LLM)", str(info["summary"])))
    return rows


def plot_history(result: Result, path: Path) -> None:
    trials = result.trials[result.trials.state == "COMPLETE"]
    maximize = result.task.direction == "maximize"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for source, group in trials.groupby("source"):
        ax.scatter(group.number, group.value, s=22, label=str(source), color=SOURCE_COLOURS.get(str(source), "grey"))
    if len(trials):
        best = trials.value.cummax() if maximize else trials.value.cummin()
        ax.step(trials.number, best, where="post", color="black", linewidth=1.2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"CV {result.task.metric}")
    ax.set_title(f"{result.study_name}")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
