"""Bayesmark's scoring.

For problem p and budget n: S = the cumulative minimum loss after n trials; opt_p = the
best loss any method saw on p; clip_p = the median loss of random search on p; the random
baseline = the expected minimum of n random draws (from all random-search evaluations on
p, by order statistics), clipped at clip_p. Normalised score = (min(S, clip_p) − opt_p) /
(baseline − opt_p): random ≈ 1, the optimum 0. Leaderboard = 100 × (1 − mean normalised)."""

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
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem"]].append(r)
    out = {}
    for problem, runs in by_problem.items():
        pool = np.array([x for r in runs if r["method"] == "random" for x in r["losses"]], dtype=float)
        pool = pool[np.isfinite(pool)]
        if not len(pool):
            continue
        clip, opt = float(np.median(pool)), min(min(r["losses"]) for r in runs)
        scale = clip - opt
        for method in {r["method"] for r in runs}:
            for n in budgets:
                best = [min(cummin_at(r["losses"], n), clip) for r in runs if r["method"] == method and len(r["losses"]) >= n]
                if best:
                    out[(problem, method, n)] = float(np.mean(best) - opt) / scale if scale > 1e-12 else 0.0
    return out

