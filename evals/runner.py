"""Runs (problem, method, seed) cells and caches each finished one as a JSON line, so an
interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from evals.methods import Method
from evals.problems import Problem
from evals.scoring import BUDGETS

RESULTS = Path(__file__).resolve().parent / "results"


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:  # JSON has no inf: a failed evaluation is stored as null
        r["losses"] = [math.inf if x is None else x for x in r["losses"]]
    return rows


def run_cells(problems: list[Problem], methods: list[Method], seeds: list[int], budget: int, path: Path,
              log: Any = print) -> list[dict[str, Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = load_rows(path)
    done = {(r["problem"], r["method"], r["seed"]) for r in rows if r["budget"] >= budget}
    todo = [(p, m, s) for p in problems for m in methods for s in seeds if (p.name, m.name, s) not in done]
    for m in methods:
        skipped = [p.name for p in problems if not m.supports(p)]
        if skipped:
            log(f"{m.name} cannot run {len(skipped)} problem(s) here (e.g. {skipped[0]}); skipping them")
    todo = [(p, m, s) for p, m, s in todo if m.supports(p)]
    log(f"{len(done)} cells cached, {len(todo)} to run -> {path}")
    for i, (problem, method, seed) in enumerate(todo, 1):
        start = time.perf_counter()
        trace = method.run(problem, budget, seed)
        row = {
            "problem": problem.name, "method": method.name, "seed": seed, "budget": budget,
            "losses": [x if math.isfinite(x) else None for x in trace.losses],
            "configs": [_jsonable(c) for c in trace.configs],
            "wall_seconds": round(trace.wall_seconds, 3),
            "objective_seconds": round(sum(trace.objective_seconds), 3),
            "overhead_per_suggestion": round(trace.overhead_per_suggestion, 5),
            "holdout": _holdout(problem, trace),
        }
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append({**row, "losses": list(trace.losses)})
        best = min(trace.losses) if trace.losses else math.nan
        log(f"[{i}/{len(todo)}] {problem.name} {method.name} seed {seed}: best loss {best:.5g} "
            f"({time.perf_counter() - start:.1f} s)")
    return rows


def _jsonable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()}


def _holdout(problem: Problem, trace: Any) -> dict[str, float | None]:
    """Held-out loss of the best-so-far config at each budget (Bayesmark's generalisation)."""
    if problem.holdout_loss is None:
        return {}
    out: dict[str, float | None] = {}
    for n in BUDGETS:
        if len(trace.losses) >= n:
            i = min(range(n), key=lambda j: trace.losses[j])
            loss = problem.holdout_loss(trace.configs[i])
            out[str(n)] = loss if math.isfinite(loss) else None
    return out
