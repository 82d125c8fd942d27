"""Ray executor benchmarks (docs/benchmarks.md, "Ray executor (issue 13)").

1. `overhead`: the same ~1-second trial (a cross-validated random forest, fixed config,
   scored here from its predictions: `core.cv.CrossValidation` with a `FixedTrial`) run
   `--trials` times from 2 threads (the loop's `workers=2`) on the local `SandboxExecutor(workers=2)`
   and on `RayExecutor(workers=2)` (a local Ray on loopback, each trial a Ray task running
   the same sandboxed trainer). Batches alternate A B B A … so machine noise hits both
   alike; each executor is warmed first (Ray start and sandbox starts reported apart).
   Reported per executor: the wall time per batch, the trial seconds as the objective sees
   them, and the CPU time of this (coordinating) process per trial — Ray's driver-side
   work (submitting, the object store, the stop-flag checks) runs in this process's threads.
   Overhead per trial at 2 workers = (Ray's batch wall − local batch wall) / (trials / 2),
   as a % of the local trial time. Then the fixed cost alone, without the CPU contention
   of 1-second fits: a ~20 ms trial (knn on iris), `--trials` times each, one at a time,
   alternating; Ray's median minus the local median.
2. `coordinator`: the serial cost per trial in the coordinator without any executor work:
   `StudyLoop` with a zero-cost objective on hyperpilot's own SQLite storage (WAL) and its
   seeded multivariate TPE (constant liar, as with several workers), the time per trial
   by how many trials the study already holds (TPE's ask grows with the history).
3. The arithmetic (no run): with W workers, trials of T seconds, a per-trial latency
   overhead d (1's fixed cost) and a serial coordinator cost c per trial (2's ask/tell/storage at
   that study size + 1's coordinator CPU per Ray trial), throughput = min(W / (T + d), 1 / c)
   trials/s; the coordinator is the bottleneck from W* = (T + d) / c workers on.

Results: one JSON line per part in evals/results/bench_ray.jsonl (a part already there is
reused unless `--force`); `--report` prints the table and the arithmetic from them.

Run (2 shared cores: under the bench lock):
`flock /tmp/hp-bench.lock nice -n 10 .venv/bin/python -m evals.bench_ray [--trials 20] [--force]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna

RESULTS = Path(__file__).resolve().parent / "results" / "bench_ray.jsonl"
MODEL = "random_forest"
CONFIG = {"max_features": 0.5, "max_depth": 30, "min_samples_split": 2, "min_samples_leaf": 1, "bootstrap": True}
DATA = "sklearn:digits"
FOLDS = 2
TINY_MODEL, TINY_DATA = "knn", "sklearn:iris"
TINY_CONFIG = {"n_neighbors": 5, "weights": "uniform", "p": 2}
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(executor: Any, data: str = DATA, model: str = MODEL) -> Any:
    from hyperpilot.core.cv import CrossValidation
    from hyperpilot.data import load_dataset
    from hyperpilot.task import Task

    d = load_dataset(data, None)
    task = Task(data=data, models=[model], cv_folds=FOLDS, seed=0).resolved("multiclass")
    return CrossValidation(executor, d.X, d.y, task)


def _batch(objective: Any, n: int, workers: int = 2, model: str = MODEL, config: dict[str, Any] = CONFIG) -> dict[str, Any]:
    """`n` trials from `workers` threads: wall, trial seconds, this process's CPU per trial."""
    from hyperpilot.core.loop import FixedTrial

    def one(i: int) -> float:
        out = objective(FixedTrial(model, config, seed=i))
        if out.value is None:
            raise RuntimeError(out.error)
        return float(out.seconds)

    cpu, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        seconds = list(pool.map(one, range(n)))
    return {"wall": time.perf_counter() - start, "cpu_per_trial": (time.process_time() - cpu) / n, "seconds": seconds}


def overhead(trials: int, batches: int) -> dict[str, Any]:
    from hyperpilot.sandbox import SandboxExecutor
    from hyperpilot.sandbox.ray_executor import RayExecutor

    start = time.perf_counter()
    ray_ex = RayExecutor(workers=2)
    ray_ex.connect()
    ray_start = time.perf_counter() - start
    objectives = {"local": _objective(SandboxExecutor(workers=2)), "ray": _objective(ray_ex)}
    warm = {}
    for name, objective in objectives.items():  # sandbox workers (and Ray workers) start: once, not timed
        warm[name] = _batch(objective, 2)["wall"]
        _batch(objective, 2)
    walls: dict[str, list[float]] = {k: [] for k in objectives}
    seconds: dict[str, list[float]] = {k: [] for k in objectives}
    cpus: dict[str, list[float]] = {k: [] for k in objectives}
    per_batch = max(2, trials // batches)
    for b in range(batches):
        order = ["local", "ray"] if b % 2 == 0 else ["ray", "local"]
        for name in order:
            out = _batch(objectives[name], per_batch)
            walls[name].append(out["wall"])
            seconds[name] += out["seconds"]
            cpus[name].append(out["cpu_per_trial"])
    # the fixed cost alone: a ~20 ms trial (knn on iris), one at a time, alternating
    tiny = {"local": _objective(objectives["local"].executor, TINY_DATA, TINY_MODEL),
            "ray": _objective(ray_ex, TINY_DATA, TINY_MODEL)}
    tiny_s: dict[str, list[float]] = {k: [] for k in tiny}
    for objective in tiny.values():
        _batch(objective, 2, 1, TINY_MODEL, TINY_CONFIG)
    for b in range(trials):
        for name in (["local", "ray"] if b % 2 == 0 else ["ray", "local"]):
            tiny_s[name] += _batch(tiny[name], 1, 1, TINY_MODEL, TINY_CONFIG)["seconds"]
    ray_ex.close()
    local_t = statistics.median(seconds["local"])
    fixed = statistics.median(tiny_s["ray"]) - statistics.median(tiny_s["local"])
    extra = [(r - lo) / (per_batch / 2) for r, lo in zip(walls["ray"], walls["local"], strict=True)]
    return {
        "part": "overhead", "model": MODEL, "data": DATA, "folds": FOLDS, "workers": 2, "batches": batches,
        "trials_per_batch": per_batch, "ray_start_s": round(ray_start, 2),
        "first_two_trials_s": {k: round(v, 2) for k, v in warm.items()},
        "batch_wall_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        "trial_s_median": {k: round(statistics.median(v), 4) for k, v in seconds.items()},
        "coordinator_cpu_ms_per_trial": {k: round(statistics.median(v) * 1000, 2) for k, v in cpus.items()},
        "overhead_s_per_trial_by_batch": [round(e, 4) for e in extra],
        "overhead_s_per_trial": round(statistics.median(extra), 4),
        "overhead_pct_of_trial": round(100 * statistics.median(extra) / local_t, 2),
        "latency_overhead_s": round(statistics.median(seconds["ray"]) - local_t, 4),
        "tiny_trial_s_median": {k: round(statistics.median(v), 4) for k, v in tiny_s.items()},
        "tiny_fixed_overhead_ms": round(fixed * 1000, 1),
        "tiny_fixed_overhead_pct_of_1s": round(fixed * 100, 2),
    }


def coordinator(n: int) -> dict[str, Any]:
    """StudyLoop, zero-cost objective, hyperpilot's storage and TPE (constant liar): ms per trial by study size."""
    from evals.bench_loop import _hyperpilot_storage, loop_run

    with tempfile.TemporaryDirectory(prefix="hp-bench-ray-") as d:
        loop_run(_hyperpilot_storage(d, "warm"), 10, 0, workers=2)  # imports, first connection
        out = loop_run(_hyperpilot_storage(d, "loop"), n, 0, workers=2, heartbeat=True)  # as a solve runs it
    per = out["per_trial"]
    step = max(1, n // 5)
    return {"part": "coordinator", "trials": n, "workers": 2, "cpu_ms_per_trial": round(out["cpu"] * 1000 / n, 2),
            "ms_per_trial_by_size": {f"{i}-{i + step}": round(statistics.median(per[i:i + step]) * 1000, 2)
                                     for i in range(0, n, step)}}


def arithmetic(parts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Throughput = min(W / (T + d), 1 / c); W* = (T + d) / c (see the module docstring)."""
    o, c = parts["overhead"], parts["coordinator"]
    d = max(0.0, o["tiny_fixed_overhead_ms"] / 1000)
    ray_cpu = o["coordinator_cpu_ms_per_trial"]["ray"] / 1000
    rows = []
    for label, loop_ms in c["ms_per_trial_by_size"].items():
        cost = loop_ms / 1000 + ray_cpu
        for T in (1.0, 10.0, 60.0):
            rows.append({"study_size": label, "T_s": T, "c_ms": round(cost * 1000, 1),
                         "W_star": round((T + d) / cost),
                         "trials_per_s": {W: round(min(W / (T + d), 1 / cost), 1) for W in (2, 10, 50, 100)}})
    return rows


def _load(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    return {row["part"]: row for row in map(json.loads, path.read_text().splitlines()) if row.get("part")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20, help="timed trials per executor (default 20)")
    p.add_argument("--batches", type=int, default=4, help="alternating batches they are split into (default 4)")
    p.add_argument("--coordinator-trials", type=int, default=500)
    p.add_argument("--force", action="store_true", help="run parts already in the results file again")
    p.add_argument("--report", action="store_true", help="only print what the results file holds")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file (default evals/results/bench_ray.jsonl)")
    args = p.parse_args(argv)
    os.environ["HOME"] = tempfile.mkdtemp(prefix="hp-bench-ray-home-")  # Ray's bootstrap file lands there, not in ~
    parts = _load(args.out)
    if not args.report:
        runs = {"overhead": lambda: overhead(args.trials, args.batches),
                "coordinator": lambda: coordinator(args.coordinator_trials)}
        for name, run in runs.items():
            if name in parts and not args.force:
                continue
            row = {**run(), "when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "python": platform.python_version(),
                   "load_1m": round(os.getloadavg()[0], 2)}
            parts[name] = row
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    for name in ("overhead", "coordinator"):
        if name in parts:
            print(json.dumps(parts[name], indent=1))
    if "overhead" in parts and "coordinator" in parts:
        for row in arithmetic(parts):
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench-ray"
    raise SystemExit(main())
