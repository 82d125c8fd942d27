"""The study report: Markdown for people, JSON for programs, a PNG of the optimisation
history (every trial by source, and the best-so-far line)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from hyperpilot.agent.assistant import Result

SOURCE_COLOURS = {"default": "tab:green", "bo": "tab:blue", "llm": "tab:orange", "memory": "tab:purple", "code": "tab:red"}


def write_report(result: Result, folder: Path) -> None:
    """Write report.json, report.md and history.png into `folder`."""
    task = result.task
    plot_history(result, folder / "history.png")
    llm, llm_md = _llm_section(result)
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
"""
    (folder / "report.md").write_text(md, encoding="utf-8")


def _llm_section(result: Result) -> tuple[dict[str, Any] | None, str]:
    """The LLM planner's accounting (stored in the study by `agent.policy`), if it took part."""
    from hyperpilot import studies
    from hyperpilot.agent.policy import accounting, accounting_rows

    info = accounting(studies.load_study(result.study_name))
    if info is None:
        return None, ""
    rows = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in accounting_rows(info))
    return info, f"\n## LLM planner\n| | |\n|---|---|\n{rows}\n"


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
