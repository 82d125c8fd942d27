"""`python -m evals run|report` — see evals/__init__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from evals.methods import all_methods
from evals.methods.memory import SOURCE, pack_path, write_suite_pack
from evals.problems import get_problems
from evals.report import (
    DOCS,
    commit,
    convergence_plot,
    detail_markdown,
    leaderboards_markdown,
    paired_markdown,
    reach_markdown,
    versus_markdown,
)
from evals.runner import RESULTS, load_rows, run_cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run (problem, method, seed) cells, resuming from the cache")
    run.add_argument("--suite", default="bayesmark", help="bayesmark | llambo | fast | hpobench | quick")
    run.add_argument("--methods", default="random,tpe,gp,smac,hebo,hyperpilot-bo", help="comma-separated method names")
    run.add_argument("--problems", default="", help="comma-separated problem names (default: the whole suite)")
    run.add_argument("--seeds", type=int, default=5)
    run.add_argument("--budget", type=int, default=30)
    run.add_argument("--out", default="", help="results file (default evals/results/SUITE.jsonl)")
    run.add_argument("--quick", action="store_true", help="smoke test: 3 small problems, 2 seeds, 10 trials, fast methods")
    rep = sub.add_parser("report", help="print the tables of a results file and draw its convergence plot")
    rep.add_argument("--suite", default="bayesmark")
    rep.add_argument("--out", default="", help="comma-separated results files (default evals/results/SUITE.jsonl)")
    pack = sub.add_parser("pack", help="write a suite's memory pack from its cached cold runs (for hyperpilot-memory)")
    pack.add_argument("--suite", default="bayesmark")
    pack.add_argument("--source", default=SOURCE, help="the method whose runs fill the memory")
    pack.add_argument("--out", default="", help="results file to read (default evals/results/SUITE.jsonl)")
    pack.add_argument("--seeds", type=int, default=0, help="only the source's runs of seeds below this (0: all)")
    args = parser.parse_args(argv)

    if args.cmd == "run":
        if args.quick:
            args.suite, args.seeds, args.budget = "quick", 2, 10
            if args.methods == run.get_default("methods"):
                args.methods = "random,tpe,hyperpilot-bo"
        methods = all_methods(args.suite)
        chosen = []
        for name in filter(None, args.methods.split(",")):
            if name not in methods:
                parser.error(f"unknown method '{name}'; choose from {', '.join(methods)}")
            reason = methods[name].unavailable()
            if reason:
                print(f"skipping {name}: {reason}")
            else:
                chosen.append(methods[name])
        if "random" not in [m.name for m in chosen]:
            print("note: scores need the random baseline; add 'random' to --methods")
        problems = get_problems(args.suite, [p for p in args.problems.split(",") if p])
        path = RESULTS / (args.out or f"{args.suite}.jsonl")
        rows = run_cells(problems, chosen, list(range(args.seeds)), args.budget, path)
        print(leaderboards_markdown(rows, f"{args.suite}, budget {args.budget}"))
        return 0

    paths = [RESULTS / name for name in (args.out or f"{args.suite}.jsonl").split(",") if name]
    rows = [r for path in paths for r in load_rows(path)]
    if args.cmd == "pack":
        target = pack_path(RESULTS, args.suite)
        if args.seeds:
            rows = [r for r in rows if r["seed"] < args.seeds]
        n_studies, n_trials = write_suite_pack(rows, get_problems(args.suite), target, args.source)
        if not n_studies:
            print(f"no {args.source} runs in {', '.join(map(str, paths))}; run them first", file=sys.stderr)
            return 2
        print(f"{target}: {n_studies} studies, {n_trials} trials from {args.source} runs")
        return 0
    if not rows:
        print(f"no results in {', '.join(map(str, paths))}; run `python -m evals run --suite {args.suite}` first",
              file=sys.stderr)
        return 2
    text = report(rows, args.suite, DOCS / "benchmarks")
    md = DOCS / "benchmarks" / f"{args.suite}.md"
    md.write_text(text + "\n")
    print(text)
    print(f"\nwritten: {md.relative_to(DOCS.parent)}")
    return 0


def report(rows: list[dict[str, Any]], suite: str, folder: Path) -> str:
    """The suite's page: leaderboards, hyperpilot against TPE, per-problem detail; the plot
    is drawn into `folder`."""
    png = folder / f"{suite}-convergence.png"
    convergence_plot(rows, png, f"{suite}: convergence, mean over problems of the mean over seeds")
    methods = {r["method"] for r in rows}
    parts = [f"# Benchmark: {suite} (commit {commit()})", "", leaderboards_markdown(rows, suite), "",
             f"![convergence]({png.name})"]
    if "tpe+default" in methods:  # the honest baseline: TPE with the card default first, as hyperpilot starts
        parts += ["", paired_markdown(rows, "tpe+default")]
    for m in sorted(methods):
        if m.startswith("hyperpilot") and "tpe" in methods:
            parts += ["", f"**{m} against Optuna TPE**, mean normalised score on the problems both ran:", "",
                      versus_markdown(rows, m, "tpe")]
    if {"hyperpilot-memory", "tpe"} <= methods:
        longest = min(32, max(len(r["losses"]) for r in rows if r["method"] == "tpe"))
        parts += ["", reach_markdown(rows, ("hyperpilot-memory", 8), ("tpe", longest))]
    parts += ["", detail_markdown(rows)]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
