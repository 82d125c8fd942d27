"""A long study: coordinator memory and latency over 2,000 trials.

    nice .venv/bin/python -m evals.scale --trials 2000 [--json out.json]

`StudyLoop` with hyperpilot's seeded multivariate TPE on a real study storage
(`studies.storage()`: SQLite in WAL mode, heartbeats on), a zero-cost objective (so what is
measured is the coordinator: sampler, storage, bookkeeping), one worker. Every 200 trials:
the resident memory of this process and the median / p95 seconds per trial of that window."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hyperpilot-scale-") as home:
        os.environ["HYPERPILOT_HOME"] = home
        from evals.spaces import bench_card
        from hyperpilot import studies
        from hyperpilot.core.loop import StudyLoop, TrialHandle
        from hyperpilot.core.proposer import CardDefaults, StudyContext
        from hyperpilot.core.space import StudySpace
        from hyperpilot.core.types import Outcome
        from hyperpilot.task import Task

        task = Task(data="synthetic", metric="accuracy", models=["svm"], n_trials=args.trials, study_name="scale").resolved("binary")
        study = studies.open_study(task)
        study.sampler = studies.make_sampler(task, 0)
        ctx = StudyContext(task, study, StudySpace([bench_card("svm")]))
        proc = psutil.Process()
        rows: list[dict[str, float]] = []
        times: list[float] = []
        last = [time.perf_counter()]

        def objective(handle: TrialHandle) -> Outcome:
            c = handle.config
            return Outcome(-abs(np.log10(c["C"]) - 1) - abs(np.log10(c["gamma"]) + 3), 0.0)

        def on_trial(record: object) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            if len(times) % args.window == 0:
                w = np.array(times[-args.window:])
                row = {"trials": len(times), "rss_mib": round(proc.memory_info().rss / 2**20, 1),
                       "median_ms": round(float(np.median(w)) * 1000, 1), "p95_ms": round(float(np.percentile(w, 95)) * 1000, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)

        start = time.perf_counter()
        StudyLoop(ctx, objective, [CardDefaults()], on_trial=on_trial, heartbeat=studies.heartbeat).run(args.trials)
        summary = {"trials": len(times), "wall_s": round(time.perf_counter() - start, 1), "windows": rows,
                   "db_mib": round(Path(home, "studies.db").stat().st_size / 2**20, 1)}
        print(json.dumps({k: v for k, v in summary.items() if k != "windows"}))
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
