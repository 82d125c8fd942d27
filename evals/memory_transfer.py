"""The memory's goals on a suite, from cached runs (leave-one-dataset-out memory).

    .venv/bin/python -m evals.memory_transfer --suite fast --memory fast-memory.jsonl
    .venv/bin/python -m evals.memory_transfer --suite hpobench --memory memory_hpobench_suite.jsonl \
        --against tpe,gp,smac --budgets 10,30

Reads the suite's results file (its `hyperpilot-memory` rows, from the memory before the
transfer prior, are shown as `memory-replay (before)`) and the memory's own results file (`python -m evals run --suite
SUITE --methods hyperpilot-memory --out FILE`, from the suite's pack: `python -m evals pack`),
on the problems and seeds the memory ran, and prints in markdown:
- the best-so-far on the budget-free scale (0 = best seen, 1 = the median random config;
  `scoring.best_so_far_shares`) of each method at a few budgets;
- "at trial 8 the level TPE reaches at trial 32" (`report.reach_markdown`);
- memory against each `--against` method at each `--budgets`, paired per problem, with the
  two-sided sign test (`scoring.paired`)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from evals.report import reach_markdown
from evals.runner import RESULTS, load_rows
from evals.scoring import best_so_far_shares, paired

MEMORY = "hyperpilot-memory"
REPLAY = "memory-replay (before)"


def rows_for(suite_file: str, memory_file: str) -> list[dict[str, Any]]:
    """The memory file's rows (memory and its ablations) and, on the same (problem, seed)
    cells, the suite file's rows; the suite file's own memory rows come from the memory
    before the transfer prior (best-config replay) and are renamed `REPLAY`."""
    memory = [r for r in load_rows(RESULTS / memory_file) if r["method"].startswith(MEMORY)]
    cells = {(r["problem"], r["seed"]) for r in memory if r["method"] == MEMORY}
    others = [{**r, "method": REPLAY if r["method"] == MEMORY else r["method"]}
              for r in load_rows(RESULTS / suite_file) if (r["problem"], r["seed"]) in cells]
    return others + [r for r in memory if (r["problem"], r["seed"]) in cells]


def table(rows: list[dict[str, Any]], methods: list[str], budgets: tuple[int, ...]) -> str:
    shares = best_so_far_shares(rows, budgets)
    problems = sorted({p for p, m, _ in shares if m == MEMORY})
    lines = ["| method | " + " | ".join(f"@{n}" for n in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for m in methods:
        cells = []
        for n in budgets:
            vals = [shares[(p, m, n)] for p in problems if (p, m, n) in shares]
            cells.append(f"{np.mean(vals):.3f}" if len(vals) == len(problems) else "–")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="fast")
    ap.add_argument("--memory", default="fast-memory.jsonl", help="the memory's results file under evals/results")
    ap.add_argument("--against", default=f"tpe+default,tpe,hyperpilot-bo,{REPLAY},{MEMORY}-greedy (before),{MEMORY}-portfolio")
    ap.add_argument("--budgets", default="5,10,20")
    args = ap.parse_args(argv)
    rows = rows_for(f"{args.suite}.jsonl", args.memory)
    mem = [r for r in rows if r["method"] == MEMORY]
    if not mem:
        print(f"no {MEMORY} rows in {RESULTS / args.memory}")
        return 2
    against = [m for m in args.against.split(",") if m]
    budgets = tuple(int(b) for b in args.budgets.split(","))
    print(f"{args.suite}: {len({r['problem'] for r in mem})} problems, seeds {sorted({r['seed'] for r in mem})}, "
          f"{len(mem)} memory runs\n")
    ablations = sorted({r["method"] for r in rows if r["method"].startswith(MEMORY) and r["method"] != MEMORY})
    present = [m for m in ["random", "tpe", "tpe+default", "gp", "smac", "hyperpilot-bo", REPLAY, *ablations, MEMORY]
               if any(r["method"] == m for r in rows)]
    print(table(rows, present, (1, 3, 5, 8, 10, 20, 30)) + "\n")
    if any(r["method"] == "tpe" and len(r["losses"]) >= 30 for r in rows):
        longest = min(32, max(len(r["losses"]) for r in rows if r["method"] == "tpe"))
        print(reach_markdown(rows, (MEMORY, 8), ("tpe", longest)) + "\n")
    print("| memory vs | budget | wins | ties | losses | sign test p |\n|---|---|---|---|---|---|")
    for m in against:
        if not any(r["method"] == m for r in rows):
            continue
        for n in budgets:
            w, t, lo, p = paired(rows, MEMORY, m, n)
            print(f"| {m} | {n} | {w} | {t} | {lo} | {p:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
