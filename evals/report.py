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

from evals.scoring import BUDGETS, bayesmark_aggregate, best_so_far_shares, normalised_scores, paired, summarise  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def coverage(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """{method: the problems it has runs on}."""
    out: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        out[r["method"]].add(r["problem"])
    return out


def leaderboards_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """The leaderboard over every problem for the methods that ran them all, then one per
    method that ran only a subset (e.g. HEBO), with every method on that subset. Scores
    come from all rows (the optimum is the best any method saw) whatever the table shows."""
    cover = coverage(rows)
    everything = set().union(*cover.values()) if cover else set()
    full = {m for m, problems in cover.items() if problems == everything}
    parts = [leaderboard_markdown(rows, f"{title}, {len(everything)} problems", full, everything)]
    for method, problems in sorted(cover.items()):
        if problems != everything:
            parts.append(leaderboard_markdown(rows, f"{title}, the {len(problems)} problems {method} ran",
                                              set(cover), problems))
    return "\n\n".join(parts)


def leaderboard_markdown(rows: list[dict[str, Any]], title: str, only_methods: set[str] | None = None,
                         only_problems: set[str] | None = None) -> str:
    """One leaderboard: `only_methods` (default all) on `only_problems` (default all)."""
    def shown(problem: str, method: str) -> bool:
        return ((only_methods is None or method in only_methods)
                and (only_problems is None or problem in only_problems))

    scores = {k: v for k, v in normalised_scores(rows).items() if shown(k[0], k[1])}
    headline = {k: v for k, v in bayesmark_aggregate(rows, problems=only_problems).items()
                if only_methods is None or k[0] in only_methods}
    rows = [r for r in rows if shown(r["problem"], r["method"])]
    summary = summarise(scores)
    budgets = [n for n in BUDGETS if any(k == n for _, k in headline)]
    if not budgets:
        return f"**{title}**: nothing to score yet (scores need random-search runs of the same problems)"
    methods = sorted({m for m, _ in headline}, key=lambda m: headline.get((m, budgets[-1]), (9, 0, 0))[0])
    seeds = defaultdict(set)
    overhead, per_trial = defaultdict(list), defaultdict(list)
    for r in rows:
        seeds[r["method"]].add(r["seed"])
        overhead[r["method"]].append(r["overhead_per_suggestion"])
        per_trial[r["method"]].append(r["wall_seconds"] / max(1, len(r["losses"])))
    lines = [f"**{title}** — Bayesmark's normalised mean score (its summary NORMED_MEAN: the grand mean over "
             "problems of (best-so-far clipped at the median random loss − best seen) / (that median − best seen), "
             "divided by random search's grand mean; lower is better, random = 1, best seen 0), in brackets the "
             "mean over problems of each problem's own normalised score ± 95 % CI over problems; leaderboard "
             "score 100 × (1 − Bayesmark's) at the largest budget, wall seconds per trial and the method's own "
             "seconds per suggestion (wall time minus the objective).", "",
             "| method | seeds | " + " | ".join(f"n={n}" for n in budgets) + " | leaderboard | s/trial | s/suggestion |",
             "|---|---|" + "---|" * len(budgets) + "---|---|---|"]
    for m in methods:
        cells = []
        for n in budgets:
            normed, _, k = headline.get((m, n), (math.nan, math.nan, 0))
            mean, half, _ = summary.get((m, n), (math.nan, math.nan, 0))
            cells.append(f"{normed:.3f} ({mean:.3f} ± {half:.3f})" if k else "–")
        lead = headline.get((m, budgets[-1]), (math.nan, 0, 0))[0]
        lines.append(f"| {m} | {len(seeds[m])} | " + " | ".join(cells) +
                     f" | {100 * (1 - lead):.1f} | {np.mean(per_trial[m]):.2f} | {np.mean(overhead[m]):.3f} |")
    total: dict[str, float] = defaultdict(float)
    for r in rows:
        total[r["method"]] += r["wall_seconds"] / 60
    lines += ["", "Wall time of these cells: " + ", ".join(f"{m} {total[m]:.1f} min" for m in methods) + "."]
    return "\n".join(lines)


def versus_markdown(rows: list[dict[str, Any]], a: str, b: str) -> str:
    """Per budget, on the problems both ran: a's mean normalised score against b's, on how
    many problems a is better / equal / worse and the sign test's p (`scoring.paired`)."""
    scores = normalised_scores(rows)
    lines = [f"| n | {a} | {b} | problems {a} better / equal / worse | sign test p |", "|---|---|---|---|---|"]
    for n in BUDGETS:
        problems = sorted({p for p, m, k in scores if m == a and k == n} & {p for p, m, k in scores if m == b and k == n})
        if not problems:
            continue
        sa = [float(np.mean(scores[(p, a, n)])) for p in problems]
        sb = [float(np.mean(scores[(p, b, n)])) for p in problems]
        w, t, lo, pvalue = paired(rows, a, b, n)
        lines.append(f"| {n} | {np.mean(sa):.3f} | {np.mean(sb):.3f} | {w} / {t} / {lo} | {pvalue:.3g} |")
    return "\n".join(lines)


def paired_markdown(rows: list[dict[str, Any]], reference: str) -> str:
    """Every method against `reference`, problem by problem (`scoring.paired`): wins / ties /
    losses at each budget and the two-sided sign test's p (ties dropped)."""
    methods = sorted({r["method"] for r in rows} - {reference})
    budgets = [n for n in BUDGETS if any(len(r["losses"]) >= n for r in rows if r["method"] == reference)]
    lines = [f"**Paired against {reference}**: per problem, the mean over seeds of the best-so-far loss (clipped "
             f"at the median random loss) at n trials; wins / ties / losses of each method against {reference} and "
             "the two-sided sign test's p (ties dropped; bold where p < 0.05).", "",
             "| method | " + " | ".join(f"n={n}" for n in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for m in methods:
        cells = []
        for n in budgets:
            w, t, lo, p = paired(rows, m, reference, n)
            text = f"{w} / {t} / {lo}, p {p:.2g}" if w + t + lo else "–"
            cells.append(f"**{text}**" if p < 0.05 else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reach_markdown(rows: list[dict[str, Any]], a: tuple[str, int], b: tuple[str, int]) -> str:
    """Does method a after a[1] trials reach what method b reaches after b[1]?"""
    longest = max(len(r["losses"]) for r in rows if r["method"] == a[0])
    curve = best_so_far_shares(rows, tuple(range(1, max(longest, a[1], b[1]) + 1)))  # one pass for every n
    shares = {p: (curve[(p, *a)], curve[(p, *b)]) for p in sorted({p for p, _, _ in curve})
              if (p, *a) in curve and (p, *b) in curve}
    if not shares:
        return f"(no problem has both {a[0]} at {a[1]} trials and {b[0]} at {b[1]} trials)"
    sa, sb = np.array(list(shares.values())).T
    reached = int((sa <= sb + 1e-9).sum())
    first = next((n for n in range(1, longest + 1)
                  if np.mean([curve[(p, a[0], n)] for p in shares]) <= np.mean(sb) + 1e-9), None)
    when = f"at trial {first}" if first else f"not within its {longest} trials"
    return (f"{a[0]} after {a[1]} trials vs {b[0]} after {b[1]} trials, best-so-far on a budget-free scale "
            f"(0 = best seen, 1 = the median random config; mean over seeds): **{np.mean(sa):.3f} vs {np.mean(sb):.3f}**; "
            f"{a[0]} reached {b[0]}'s level on {reached} of {len(shares)} problems, and {b[0]}'s mean level "
            f"after {b[1]} trials {when}.")


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
    """Two panels by trial, for the methods that ran every problem: Bayesmark's normalised
    score (its random baseline improves with n, so it need not fall), and the best-so-far on
    a budget-free scale (0 = best seen, 1 = median random config), which only falls."""
    cover = coverage(rows)
    everything = set().union(*cover.values())
    rows = [r for r in rows if cover[r["method"]] == everything]
    budgets = tuple(range(1, max(r["budget"] for r in rows) + 1))
    normalised: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (_, m, n), values in normalised_scores(rows, budgets=budgets).items():
        normalised[(m, n)].append(float(np.mean(values)))
    share: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (_, m, n), value in best_so_far_shares(rows, budgets).items():
        share[(m, n)].append(value)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    styles = ["-", "--", "-.", ":"]
    for ax, per, ylabel in ((axes[0], normalised, "Bayesmark normalised score"),
                            (axes[1], share, "best so far: 0 = best seen, 1 = median random")):
        for i, m in enumerate(sorted({m for m, _ in per})):
            ns = sorted(n for mm, n in per if mm == m)
            ax.plot(ns, [np.mean(per[(m, n)]) for n in ns], label=m, linewidth=1.6, linestyle=styles[i % len(styles)])
        ax.set_xlabel("trials")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title("lower is better", fontsize=8)
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
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
