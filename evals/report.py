"""Tables and convergence plots from cached results, written into docs/."""

from __future__ import annotations

import math
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evals.scoring import BUDGETS, normalised_scores, summarise  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def leaderboard_markdown(rows: list[dict[str, Any]], title: str) -> str:
    scores = normalised_scores(rows)
    summary = summarise(scores)
    methods = sorted({m for m, _ in summary}, key=lambda m: summary.get((m, max(BUDGETS)), (9, 0, 0))[0])
    budgets = [n for n in BUDGETS if any((m, n) in summary for m in methods)]
    seeds = defaultdict(set)
    for r in rows:
        seeds[r["method"]].add(r["seed"])
    lines = [f"**{title}** — normalised mean score (lower is better; random ≈ 1, best seen 0) ± 95 % CI over problems, "
             "and leaderboard score 100 × (1 − normalised) at the largest budget.", "",
             "| method | seeds | " + " | ".join(f"n={n}" for n in budgets) + " | leaderboard | s/suggestion |",
             "|---|---|" + "---|" * len(budgets) + "---|---|"]
    overhead = defaultdict(list)
    for r in rows:
        overhead[r["method"]].append(r["overhead_per_suggestion"])
    for m in methods:
        cells = []
        for n in budgets:
            mean, half, k = summary.get((m, n), (math.nan, math.nan, 0))
            cells.append(f"{mean:.3f} ± {half:.3f}" if k else "–")
        lead = summary.get((m, budgets[-1]), (math.nan, 0, 0))[0] if budgets else math.nan
        lines.append(f"| {m} | {len(seeds[m])} | " + " | ".join(cells) +
                     f" | {100 * (1 - lead):.1f} | {np.mean(overhead[m]):.3f} |")
    return "\n".join(lines)


def detail_markdown(rows: list[dict[str, Any]]) -> str:
    scores = normalised_scores(rows)
    n = max(BUDGETS)
    problems = sorted({p for p, _, _ in scores})
    methods = sorted({m for _, m, _ in scores})
    lines = [f"Normalised score per problem at n={n} (mean over seeds).", "",
             "| problem | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for p in problems:
        cells = [f"{np.mean(scores[(p, m, n)]):.3f}" if scores.get((p, m, n)) else "–" for m in methods]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def convergence_plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    scores = normalised_scores(rows, budgets=tuple(range(1, max(r["budget"] for r in rows) + 1)))
    per: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (_, m, n), values in scores.items():
        per[(m, n)].append(float(np.mean(values)))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for m in sorted({m for m, _ in per}):
        ns = sorted(n for mm, n in per if mm == m)
        ax.plot(ns, [np.mean(per[(m, n)]) for n in ns], label=m, linewidth=1.6)
    ax.set_xlabel("trials")
    ax.set_ylabel("normalised score (lower is better)")
    ax.set_title(title)
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=DOCS.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
