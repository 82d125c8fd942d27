"""Time budgets (docs/benchmarks.md, "Time budgets (issue 15)").

How many trials a solve of `sklearn:iris` gets in a wall-clock budget, and how long it
takes from the start of the solve to the end of its first trial, with three executors:
`sandbox` (the default `SandboxExecutor`, whose workers a solve starts in the background
as soon as the data checks pass), `sandbox-cold` (the same with `SandboxExecutor.warm`
switched off: the worker starts when the first trial asks for it, as before issue 15) and
`inprocess`. Each run is a fresh Python process, so the sandbox worker starts cold every
time, as for a user's first solve; runs alternate between the executors so that machine
noise hits all alike.

Run: `nice -n 5 .venv/bin/python -m evals.bench_time_budget [--runs 3] [--budget 20] [--cap N]
[--llm none|embedded] [--executors sandbox,sandbox-cold,inprocess]` (`--cap` gives a trial cap
as well; `--llm embedded` lets the planner's start overlap the worker's, as the CLI's default does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def one(executor: str, budget: float, cap: int | None, llm: str) -> dict[str, float]:
    """One solve in this process; what it measured."""
    from hyperpilot import Assistant, Task
    from hyperpilot.core.types import TrialRecord
    from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor

    if executor == "sandbox-cold":
        SandboxExecutor.warm = lambda self: None  # type: ignore[method-assign]  # the worker starts with the first trial
    first: list[float] = []
    start = time.perf_counter()

    def on_trial(record: TrialRecord) -> None:
        if not first:
            first.append(time.perf_counter() - start)

    assistant = Assistant(llm=llm, memory=False, on_trial=on_trial,
                          executor=InProcessExecutor() if executor == "inprocess" else None)
    fields: dict[str, object] = {"data": "sklearn:iris", "timeout": budget}
    if cap is not None:
        fields["n_trials"] = cap
    result = assistant.solve(Task.model_validate(fields))
    return {"trials": result.n_trials, "first_trial_s": round(first[0], 2) if first else float("nan"),
            "wall_s": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--cap", type=int, default=None)
    parser.add_argument("--executors", default="sandbox,sandbox-cold,inprocess")
    parser.add_argument("--llm", default="none")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.budget, args.cap, args.llm)))
        return
    rows: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.runs):
        for executor in args.executors.split(","):
            with tempfile.TemporaryDirectory() as home:
                cmd = [sys.executable, "-m", "evals.bench_time_budget", "--one", executor, "--budget", str(args.budget),
                       "--llm", args.llm]
                if args.cap is not None:
                    cmd += ["--cap", str(args.cap)]
                env = {**os.environ, "HYPERPILOT_HOME": home, "HYPERPILOT_LLM": "none"}
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                rows.setdefault(executor, []).append(row)
                print(executor, row, flush=True)
    for executor, runs in rows.items():
        trials = [r["trials"] for r in runs]
        first = [r["first_trial_s"] for r in runs]
        print(f"{executor}: trials {trials} (median {statistics.median(trials)}), first trial ends at "
              f"{first} s (median {statistics.median(first)}), wall {[r['wall_s'] for r in runs]} s")


if __name__ == "__main__":
    main()
