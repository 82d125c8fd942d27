"""Bayesmark's scoring (uber/bayesmark, docs/scoring.rst "How scoring works"; the facts are
in ../shared/BAYESMARK.md).

For problem p and budget n: S = the cumulative minimum loss after n trials; opt_p = the
best loss any method saw on p; clip_p = the median loss of random search on p (Bayesmark's
"median score after a single function evaluation"); S' = min(S, clip_p).

The headline, `bayesmark_aggregate` (Bayesmark's summary[NORMED_MEAN]): per problem
norm-mean-perf = (mean over seeds of S' − opt_p) / (clip_p − opt_p); their mean over
problems (the grand mean) divided by the same grand mean of random search, whose S' is
the expected minimum of n draws from all random-search evaluations on p (clipped draws,
by order statistics). A ratio of grand means: random = 1 at every n, the optimum 0, and a
problem where random search gets close to opt cannot blow the score up.

Beside it, `normalised_scores` + `summarise` (what this harness reported first): each
problem divided by its own (random baseline − opt_p), then averaged over problems, which
explodes where the baseline is near opt. Leaderboard = 100 × (1 − normalised).

`paired` compares two methods problem by problem (mean over seeds of S' at n) and gives
wins / ties / losses with a two-sided sign test (ties dropped)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

BUDGETS = (5, 10, 20, 30)


def cummin_at(losses: list[float], n: int) -> float:
    finite = [x for x in losses[:n]]
    return min(finite) if finite else math.inf


def expected_min(pool: np.ndarray, n: int) -> float:
    """E[min of n iid draws from the empirical distribution `pool`]."""
    x = np.sort(pool[np.isfinite(pool)])
    m = len(x)
    if m == 0:
        return math.inf
    i = np.arange(m)
    p = ((m - i) / m) ** n - ((m - i - 1) / m) ** n
    return float((p * x).sum())


def normalised_scores(rows: list[dict[str, Any]], budgets: tuple[int, ...] = BUDGETS) -> dict[tuple[str, str, int], list[float]]:
    """{(problem, method, budget): [normalised score per seed]} from cached run rows."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem"]].append(r)
    out: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for problem, runs in by_problem.items():
        random_pool = np.array([x for r in runs if r["method"] == "random" for x in r["losses"]], dtype=float)
        if not np.isfinite(random_pool).any():
            continue  # no random baseline for this problem (yet)
        clip = float(np.median(random_pool[np.isfinite(random_pool)]))
        opt = min(min(r["losses"]) for r in runs)
        for n in budgets:
            base = min(expected_min(random_pool, n), clip)
            scale = base - opt
            for r in runs:
                if len(r["losses"]) < n:
                    continue
                s = min(cummin_at(r["losses"], n), clip)
                out[(problem, r["method"], n)].append(0.0 if scale <= 1e-12 else (s - opt) / scale)
    return out


def summarise(scores: dict[tuple[str, str, int], list[float]]) -> dict[tuple[str, int], tuple[float, float, int]]:
    """{(method, budget): (mean normalised score, 95 % CI half-width, problems)}: the mean
    over problems of each problem's mean over seeds; the CI is over problems."""
    per: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (_, method, n), values in scores.items():
        per[(method, n)].append(float(np.mean(values)))
    out = {}
    for key, values in per.items():
        arr = np.array(values)
        half = 1.96 * arr.std(ddof=1) / math.sqrt(len(arr)) if len(arr) > 1 else math.nan
        out[key] = (float(arr.mean()), float(half), len(arr))
    return out


def best_so_far_shares(rows: list[dict[str, Any]], budgets: tuple[int, ...] = BUDGETS) -> dict[tuple[str, str, int], float]:
    """{(problem, method, n): share} on a scale that does not depend on the budget:
    (S − opt) / (clip − opt), with S the best-so-far loss after n trials (mean over seeds,
    clipped at clip), opt the best any method saw and clip the median random-search loss
    (0 = the best seen, 1 = a typical random config). So a method at n trials can be set
    against another at m trials, which Bayesmark's normalised score (whose random baseline
    moves with n) cannot do."""
    out = {}
    for problem, (runs, _, clip, opt) in _clip_and_opt(rows).items():
        scale = clip - opt
        for method in {r["method"] for r in runs}:
            for n in budgets:
                best = [min(cummin_at(r["losses"], n), clip) for r in runs if r["method"] == method and len(r["losses"]) >= n]
                if best:
                    out[(problem, method, n)] = float(np.mean(best) - opt) / scale if scale > 1e-12 else 0.0
    return out


def bayesmark_aggregate(rows: list[dict[str, Any]], budgets: tuple[int, ...] = BUDGETS,
                        problems: set[str] | None = None) -> dict[tuple[str, int], tuple[float, float, int]]:
    """{(method, n): (normalised mean, grand mean, problems)}: Bayesmark's summary[NORMED_MEAN],
    the grand mean over problems of (mean S' − opt) / (clip − opt) divided by random search's
    grand mean on the same problems (see the module docstring), over the problems the method
    ran (of `problems`, default all; opt and clip come from all rows). Problems without
    random runs are left out."""
    shares = best_so_far_shares(rows, budgets)
    baseline = random_shares(rows, budgets)
    per: dict[tuple[str, int], list[str]] = defaultdict(list)
    for problem, method, n in shares:
        if (problem, n) in baseline and (problems is None or problem in problems):
            per[(method, n)].append(problem)
    out = {}
    for (method, n), ran in per.items():
        grand = float(np.mean([shares[(p, method, n)] for p in ran]))
        rand = float(np.mean([baseline[(p, n)] for p in ran]))
        out[(method, n)] = (grand / rand if rand > 1e-12 else math.nan, grand, len(ran))
    return out


def random_shares(rows: list[dict[str, Any]], budgets: tuple[int, ...] = BUDGETS) -> dict[tuple[str, int], float]:
    """{(problem, n): (E[S'] − opt) / (clip − opt)} of random search, from all its evaluations
    on the problem pooled (the expected minimum of n clipped draws)."""
    out = {}
    for problem, (_, pool, clip, opt) in _clip_and_opt(rows).items():
        for n in budgets:
            scale = clip - opt
            out[(problem, n)] = (expected_min(np.minimum(pool, clip), n) - opt) / scale if scale > 1e-12 else 0.0
    return out


def paired(rows: list[dict[str, Any]], a: str, b: str, n: int) -> tuple[int, int, int, float]:
    """(wins, ties, losses, p) of method a against b at budget n: per problem both ran, the
    mean over seeds of S' (`best_so_far_shares`); a wins where its mean is lower, a tie is
    an equal mean (within 1e-9 on the 0..1 scale). p = the two-sided sign test
    (`scipy.stats.binomtest`, ties dropped); nan without a win or a loss."""
    from scipy.stats import binomtest

    shares = best_so_far_shares(rows, (n,))
    problems = {p for p, m, _ in shares if m == a} & {p for p, m, _ in shares if m == b}
    diffs = [shares[(p, a, n)] - shares[(p, b, n)] for p in problems]
    wins, losses = sum(d < -1e-9 for d in diffs), sum(d > 1e-9 for d in diffs)
    p = binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else math.nan
    return wins, len(diffs) - wins - losses, losses, float(p)


def _clip_and_opt(rows: list[dict[str, Any]]) -> dict[str, tuple[list[dict[str, Any]], np.ndarray, float, float]]:
    """{problem: (its runs, random search's finite losses, clip, opt)}: clip the median random
    loss, opt the best loss any method saw; problems without random runs are left out."""
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem"]].append(r)
    out = {}
    for problem, runs in by_problem.items():
        pool = np.array([x for r in runs if r["method"] == "random" for x in r["losses"]], dtype=float)
        pool = pool[np.isfinite(pool)]
        if len(pool):
            out[problem] = (runs, pool, float(np.median(pool)), min(min(r["losses"]) for r in runs))
    return out
