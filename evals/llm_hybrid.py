"""Hybrid LLM + BO against BO alone and plain Optuna TPE, on Bayesmark-style problems.

Methods (each on the same objective: the problem's model, 5-fold CV, fixed data seed):
- `random`: random search (the normalising baseline of Bayesmark's score);
- `tpe`: plain Optuna TPE (`optuna.create_study` + `TPESampler(seed)`, ask/tell);
- `hyperpilot-bo`: `Assistant(llm="none")` — card default, then multivariate TPE;
- `hyperpilot-llm-R`: `Assistant(llm=EmbeddedLLM(seed), llm_rate=R)` — card default, the
  LLM's initial design, then the LLM replaces BO's candidate at rate R.

Cells are cached per (problem, method, seed) in evals/results/llm_hybrid.jsonl (resumable:
rerun the same command and it goes on); the planner's accounting per hybrid run goes to
evals/results/llm_hybrid_planner.jsonl. Seeds run outermost, so a partial run covers every
problem.

    nice .venv/bin/python -m evals.llm_hybrid run --seeds 5 --budget 30 --rates 0.25,0.5 [--timeout 120]
    .venv/bin/python -m evals.llm_hybrid report
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections import defaultdict
from typing import Any

import numpy as np

from evals.methods import Method, Trace
from evals.methods.hyperpilot import Hyperpilot
from evals.methods.optuna_samplers import OptunaSampler
from evals.methods.random_search import RandomSearch
from evals.problems import Problem, get_problems
from evals.report import detail_markdown, leaderboard_markdown
from evals.runner import RESULTS, load_rows, run_cells
from evals.scoring import expected_min

PROBLEMS = ["bm-iris-knn-accuracy", "bm-wine-decision_tree-accuracy", "bm-breast_cancer-svm-accuracy",
            "bm-breast_cancer-logistic_regression-accuracy", "bm-diabetes-ridge-mse", "bm-diabetes-decision_tree-mse"]
OUT = RESULTS / "llm_hybrid.jsonl"
PLANNER_OUT = RESULTS / "llm_hybrid_planner.jsonl"


def _no_memory() -> dict[str, Any]:
    """Switch the trial memory off where the Assistant has one: it would differ per run."""
    from hyperpilot import Assistant

    return {"memory": False} if "memory" in inspect.signature(Assistant).parameters else {}


class Hybrid(Hyperpilot):
    """hyperpilot with the embedded LLM at `rate` (a fresh, seeded model per run, and a call
    timeout of `timeout` seconds); records the planner's accounting per run."""

    def __init__(self, rate: float, timeout: float) -> None:
        super().__init__(f"hyperpilot-llm-{rate:g}", llm="none", **_no_memory())
        self.rate = rate
        self.timeout = timeout

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        from hyperpilot.agent.llm import EmbeddedLLM
        from hyperpilot.agent.policy import LLMProposer

        self.assistant_kwargs["proposers"] = [LLMProposer(EmbeddedLLM(seed=seed), rate=self.rate, timeout=self.timeout)]
        trace = super().run(problem, budget, seed)
        stats = self._last.llm_stats()
        with PLANNER_OUT.open("a") as f:
            f.write(json.dumps({"problem": problem.name, "method": self.name, "seed": seed, "budget": budget,
                                "wall_seconds": round(trace.wall_seconds, 3), **stats}) + "\n")
        return trace

    def assistant(self, problem: Problem) -> Any:
        assistant = super().assistant(problem)
        self._last = _Probe(assistant)
        return assistant


class _Probe:
    def __init__(self, assistant: Any) -> None:
        self.assistant = assistant

    def llm_stats(self) -> dict[str, Any]:
        from hyperpilot.agent.policy import LLMProposer

        proposer = next(p for p in self.assistant.proposers if isinstance(p, LLMProposer))
        return {"stats": proposer.planner.stats.to_dict(), "proposed": proposer._proposed, "used": proposer._used}  # noqa: SLF001


def methods(rates: list[float], timeout: float) -> list[Method]:
    return [RandomSearch(), OptunaSampler("tpe"), Hyperpilot("hyperpilot-bo", llm="none", **_no_memory()),
            *[Hybrid(r, timeout) for r in rates]]


def report(rows: list[dict[str, Any]]) -> str:
    """Leaderboard, per-problem scores, per-seed wins against BO alone, planner overhead."""
    rows = list({(r["problem"], r["method"], r["seed"]): r for r in reversed(rows) if r["problem"] in PROBLEMS}.values())
    out = [leaderboard_markdown(rows, f"LLM hybrid, {len({r['problem'] for r in rows})} problems, budget 30"), "",
           detail_markdown(rows), ""]
    hybrids = sorted({r["method"] for r in rows if r["method"].startswith("hyperpilot-llm")})
    by_cell = {(r["problem"], r["method"], r["seed"]): min(r["losses"]) for r in rows}
    out += ["Per seed, best loss after 30 trials against `hyperpilot-bo` (same problem and seed):", "",
            "| method | better | equal | worse | mean normalised score at n=30, hybrid vs bo (same cells) |",
            "|---|---|---|---|---|"]
    for m in hybrids:
        better = equal = worse = 0
        for (p, method, s), loss in by_cell.items():
            if method != m or (p, "hyperpilot-bo", s) not in by_cell:
                continue
            bo = by_cell[(p, "hyperpilot-bo", s)]
            better += loss < bo - 1e-12
            worse += loss > bo + 1e-12
            equal += abs(loss - bo) <= 1e-12
        paired = _paired_scores(rows, m)
        diff = np.mean([h - b for h, b in paired]) if paired else float("nan")
        out.append(f"| {m} | {better} | {equal} | {worse} | {np.mean([h for h, _ in paired]):.3f} vs "
                   f"{np.mean([b for _, b in paired]):.3f} ({diff:+.3f}) over {len(paired)} paired runs |")
    planner = [json.loads(line) for line in PLANNER_OUT.read_text().splitlines()] if PLANNER_OUT.exists() else []
    planner = list({(p["problem"], p["method"], p["seed"]): p for p in reversed(planner)}.values())  # first of duplicates
    if planner:
        out += ["", "Planner cost per hybrid run (mean):", "",
                "| method | runs | calls | s/call | planner s | wall s | planner share of wall | valid | invalid | fell back | used |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for p in planner:
            groups[p["method"]].append(p)
        for m, runs in sorted(groups.items()):
            calls = np.mean([r["stats"]["calls"] for r in runs])
            secs = np.mean([r["stats"]["seconds"] for r in runs])
            wall = np.mean([r["wall_seconds"] for r in runs])
            share = sum(r["stats"]["seconds"] for r in runs) / max(1e-9, sum(r["wall_seconds"] for r in runs))
            out.append(f"| {m} | {len(runs)} | {calls:.1f} | {secs / max(calls, 1e-9):.2f} | {secs:.1f} | {wall:.1f} | "
                       f"{share:.0%} | {np.mean([r['stats']['valid'] for r in runs]):.1f} | "
                       f"{np.mean([r['stats']['invalid'] for r in runs]):.1f} | "
                       f"{np.mean([r['stats']['fallbacks'] for r in runs]):.1f} | {np.mean([r['used'] for r in runs]):.1f} |")
    walls: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        walls[r["method"]].append(r["wall_seconds"])
    out += ["", "Mean wall seconds per run: " + ", ".join(f"{m} {np.mean(v):.1f}" for m, v in sorted(walls.items()))]
    return "\n".join(out)


def _paired_scores(rows: list[dict[str, Any]], method: str, n: int = 30) -> list[tuple[float, float]]:
    """(hybrid, bo) normalised scores at `n` for every (problem, seed) both ran (Bayesmark's
    normalisation, as in evals.scoring)."""
    out = []
    for p in sorted({r["problem"] for r in rows}):
        runs = [r for r in rows if r["problem"] == p]
        pool = np.array([x for r in runs if r["method"] == "random" for x in r["losses"]], dtype=float)
        if not np.isfinite(pool).any():
            continue
        clip = float(np.median(pool[np.isfinite(pool)]))
        opt = min(min(r["losses"]) for r in runs)
        scale = min(expected_min(pool, n), clip) - opt
        by = {(r["method"], r["seed"]): min(min(r["losses"][:n]), clip) for r in runs}
        for (m, seed), loss in by.items():
            if m == method and ("hyperpilot-bo", seed) in by:
                norm = [0.0 if scale <= 1e-12 else (x - opt) / scale for x in (loss, by[("hyperpilot-bo", seed)])]
                out.append((norm[0], norm[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.llm_hybrid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--seeds", type=int, default=5)
    run.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. seeds-1 (to split a run)")
    run.add_argument("--budget", type=int, default=30)
    run.add_argument("--rates", default="0.25,0.5")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds per LLM call (the product default is 30)")
    run.add_argument("--problems", default=",".join(PROBLEMS))
    run.add_argument("--methods", default="", help="only these method names (default: all)")
    sub.add_parser("report")
    args = parser.parse_args(argv)
    if args.cmd == "report":
        print(report(load_rows(OUT)))
        return 0
    problems = get_problems("fast", args.problems.split(","))
    chosen = methods([float(r) for r in args.rates.split(",") if r], args.timeout)
    if args.methods:
        chosen = [m for m in chosen if m.name in args.methods.split(",")]
    for seed in range(args.first_seed, args.seeds):
        run_cells(problems, chosen, [seed], args.budget, OUT)
    print(report(load_rows(OUT)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
