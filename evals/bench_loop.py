"""Core loop benchmarks (docs/benchmarks.md, "Core loop (issue 10)").

1. Coordinator overhead per trial: `StudyLoop` with a zero-cost objective (a quadratic of
   the config) for `--trials` trials on a fresh SQLite study (hyperpilot's seeded TPE)
   against bare Optuna ask/suggest/tell with the same sampler on the same kind of storage;
   per-trial wall time (the objective costs microseconds, so it is the coordinator's). Two
   storages: a plain `RDBStorage("sqlite:///FILE")` (SQLite's defaults: rollback journal,
   every commit waits for the disk) and the storage exactly as `studies.storage()` makes it
   (WAL, synchronous=NORMAL, heartbeat settings); on the latter also `StudyLoop(heartbeat=
   studies.heartbeat)` and Optuna's own heartbeat path (`Study.optimize`). Variants run
   interleaved after a short warm-up, `--repeats` times each. Reported: the median wall time
   per trial over all trials of all repeats, the lowest per-run median (the least disturbed
   run), the CPU time of this process per trial (all its threads; robust to other load on
   the machine) and the SQLite commits per trial.
2. Parallel trials: trials per minute with `workers=1` and `workers=2` for 1-second trials
   through `StudyLoop` — `time.sleep(1.0)` (waiting, like a coordinator waiting on a
   sandbox), a CPU-bound pure-Python loop of ~1 s of work run on the loop's worker thread
   (holds the GIL), and the same CPU work in a separate process (a process pool, as the
   sandbox runs trials in processes). A control runs the same CPU work through the process
   pool alone (no study, no loop), one at a time and two at a time: what the machine itself
   gives two processes at that moment, the ceiling for the loop's ratio.
3. `--assistant`: `Assistant(workers=1)` against `Assistant(workers=2)` with the default
   `SandboxExecutor` on a real small dataset (random forest on breast_cancer, 5-fold CV),
   with the seeded random sampler so that both runs train the very same configs (the card
   default, then the same random draws; TPE would pick different ones with 2 in flight):
   trials per minute of the whole solve (data loading, refit and report included) and
   within the loop (first trial's start to last trial's end), after a 2-trial warm-up solve
   that starts both (process-wide, shared) sandbox workers; runs in the order 1, 2, 2, 1.

Run: `nice -n 10 .venv/bin/python -m evals.bench_loop [--assistant] [--json out.json]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna

from hyperpilot import studies
from hyperpilot.cards.model import ModelCard
from hyperpilot.core import Outcome, StudyContext, StudyLoop, StudySpace, TrialHandle, TrialRecord
from hyperpilot.samplers import make_sampler
from hyperpilot.task import Task

optuna.logging.set_verbosity(optuna.logging.WARNING)
NAMES = ("x", "y", "z")
CARD = ModelCard.model_validate({
    "name": "quadratic", "title": "quadratic", "family": "test", "description": "sum of (v - 1)^2",
    "task_types": ["regression"], "space": {n: {"type": "float", "low": -5.0, "high": 5.0} for n in NAMES},
    "default": {n: 0.0 for n in NAMES}})


def quadratic(config: dict[str, Any]) -> float:
    return sum((float(config[n]) - 1.0) ** 2 for n in NAMES)


def _sqlite(folder: str, name: str) -> optuna.storages.RDBStorage:
    """A plain SQLite storage (SQLite's defaults)."""
    return optuna.storages.RDBStorage(f"sqlite:///{folder}/{name}.db", engine_kwargs={"connect_args": {"timeout": 60}})


def _commits(storage: optuna.storages.BaseStorage) -> list[int]:
    """A counter of the storage's commits (a one-element list, updated in place)."""
    from sqlalchemy import event

    count = [0]
    engine = getattr(storage, "engine", None)
    if engine is not None:
        event.listen(engine, "commit", lambda conn: count.__setitem__(0, count[0] + 1))
    return count


def _hyperpilot_storage(folder: str, name: str) -> optuna.storages.RDBStorage:
    """The storage exactly as `studies.storage()` makes it (heartbeats on), on its own file."""
    old = os.environ.get("HYPERPILOT_STORAGE")
    os.environ["HYPERPILOT_STORAGE"] = f"sqlite:///{folder}/{name}.db"
    try:
        return studies.storage()
    finally:
        if old is None:
            os.environ.pop("HYPERPILOT_STORAGE", None)
        else:
            os.environ["HYPERPILOT_STORAGE"] = old


def _gaps(stamps: list[float], start: float) -> list[float]:
    return [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)]


def loop_run(storage: optuna.storages.BaseStorage, n: int, seed: int, *, workers: int = 1, heartbeat: bool = False,
             objective: Any = None) -> dict[str, Any]:
    """`StudyLoop` on a fresh study: per-trial wall times, the whole wall time, trial seconds."""
    study = optuna.create_study(storage=storage, sampler=make_sampler("tpe", seed, n, parallel=workers > 1),
                                pruner=optuna.pruners.NopPruner(), study_name=f"bench-{time.time_ns()}")
    ctx = StudyContext(Task(data="bench", seed=seed, n_trials=n), study, StudySpace([CARD]))
    stamps: list[float] = []
    seconds: list[float] = []
    commits = _commits(storage)

    def zero(handle: TrialHandle) -> Outcome:
        return Outcome(quadratic(handle.config), 0.0)

    def on_trial(record: TrialRecord) -> None:
        stamps.append(time.perf_counter())
        seconds.append(record.seconds)

    loop = StudyLoop(ctx, objective or zero, workers=workers, on_trial=on_trial,
                     heartbeat=studies.heartbeat if heartbeat else None)
    cpu, start = time.process_time(), time.perf_counter()
    loop.run(n)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ok = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    return {"per_trial": _gaps(stamps, start), "wall": wall, "cpu": cpu, "trial_seconds": seconds, "complete": ok,
            "commits": commits[0]}


def bare_run(storage: optuna.storages.BaseStorage, n: int, seed: int) -> dict[str, Any]:
    """Bare Optuna: ask, suggest, tell on a fresh study with the same sampler."""
    study = optuna.create_study(storage=storage, sampler=make_sampler("tpe", seed, n), study_name=f"bare-{time.time_ns()}")
    commits = _commits(storage)
    times = []
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        config = {k: trial.suggest_float(k, -5.0, 5.0) for k in NAMES}
        study.tell(trial, quadratic(config))
        times.append(time.perf_counter() - t0)
    return {"per_trial": times, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "commits": commits[0]}


def optimize_run(storage: optuna.storages.BaseStorage, n: int, seed: int) -> dict[str, Any]:
    """Optuna's own loop (`Study.optimize`), which records heartbeats when the storage has them."""
    study = optuna.create_study(storage=storage, sampler=make_sampler("tpe", seed, n), study_name=f"opt-{time.time_ns()}")
    commits = _commits(storage)
    stamps: list[float] = []
    cpu, start = time.process_time(), time.perf_counter()
    study.optimize(lambda t: quadratic({k: t.suggest_float(k, -5.0, 5.0) for k in NAMES}), n_trials=n,
                   callbacks=[lambda s, t: stamps.append(time.perf_counter())])
    return {"per_trial": _gaps(stamps, start), "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "commits": commits[0]}


def overhead(n: int, repeats: int) -> dict[str, Any]:
    hp = _hyperpilot_storage
    variants = {
        "plain/studyloop": lambda d, i, m: loop_run(_sqlite(d, f"loop{i}-{m}"), m, i),
        "plain/bare_ask_tell": lambda d, i, m: bare_run(_sqlite(d, f"bare{i}-{m}"), m, i),
        "hyperpilot/studyloop": lambda d, i, m: loop_run(hp(d, f"hploop{i}-{m}"), m, i),
        "hyperpilot/bare_ask_tell": lambda d, i, m: bare_run(hp(d, f"hpbare{i}-{m}"), m, i),
        "hyperpilot/studyloop_heartbeat": lambda d, i, m: loop_run(hp(d, f"hploophb{i}-{m}"), m, i, heartbeat=True),
        "hyperpilot/optimize_heartbeat": lambda d, i, m: optimize_run(hp(d, f"hpopthb{i}-{m}"), m, i),
    }
    per: dict[str, list[float]] = {k: [] for k in variants}
    run_medians: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    walls: dict[str, list[float]] = {k: [] for k in variants}
    commits: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hp-bench-loop-") as d:
        for run in variants.values():  # warm-up (imports, first connections), not timed
            run(d, 0, 10)
        for i in range(repeats):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                out = variants[name](d, i, n)
                per[name] += out["per_trial"]
                run_medians[name].append(statistics.median(out["per_trial"]) * 1000)
                cpus[name].append(out["cpu"] * 1000 / n)
                walls[name].append(out["wall"])
                commits[name] = out["commits"] / n
    med = {k: statistics.median(v) * 1000 for k, v in per.items()}
    best = {k: min(v) for k, v in run_medians.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}

    def ratios(x: dict[str, float]) -> dict[str, float]:
        pairs = {"plain: studyloop/bare": ("plain/studyloop", "plain/bare_ask_tell"),
                 "hyperpilot: studyloop/bare": ("hyperpilot/studyloop", "hyperpilot/bare_ask_tell"),
                 "hyperpilot: studyloop_heartbeat/bare": ("hyperpilot/studyloop_heartbeat", "hyperpilot/bare_ask_tell"),
                 "hyperpilot: studyloop_heartbeat/optimize_heartbeat": ("hyperpilot/studyloop_heartbeat",
                                                                        "hyperpilot/optimize_heartbeat")}
        return {k: round(x[a] / x[b], 2) for k, (a, b) in pairs.items()}

    return {
        "trials": n, "repeats": repeats,
        "median_ms_per_trial": {k: round(v, 2) for k, v in med.items()},
        "lowest_run_median_ms_per_trial": {k: round(v, 2) for k, v in best.items()},
        "cpu_ms_per_trial": {k: round(v, 2) for k, v in cpu.items()},
        "commits_per_trial": {k: round(v, 1) for k, v in commits.items()},
        "p90_ms_per_trial": {k: round(statistics.quantiles(v, n=10)[-1] * 1000, 2) for k, v in per.items()},
        "run_medians_ms": {k: [round(m, 1) for m in v] for k, v in run_medians.items()},
        "wall_s": {k: [round(w, 2) for w in v] for k, v in walls.items()},
        "ratios_median": ratios(med), "ratios_lowest_run_median": ratios(best), "ratios_cpu": ratios(cpu),
    }


def spin(n: int) -> int:
    """Fixed CPU work: `n` steps of a pure-Python loop."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def calibrate(seconds: float = 1.0) -> int:
    """Steps of `spin` that take about `seconds` here (best of three)."""
    n = 200_000
    while True:
        t0 = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t0
        if dt > 0.2:
            break
        n *= 2
    best = min(_timed(spin, n) for _ in range(3))
    return int(n * seconds / best)


def _timed(f: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    f(*args)
    return time.perf_counter() - t0


def parallel(n: int, steps: int) -> dict[str, Any]:
    pool = ProcessPoolExecutor(max_workers=2)
    list(pool.map(spin, [1000, 1000]))  # start both processes before timing

    def sleep(handle: TrialHandle) -> Outcome:
        t0 = time.perf_counter()
        time.sleep(1.0)
        return Outcome(quadratic(handle.config), time.perf_counter() - t0)

    def cpu_thread(handle: TrialHandle) -> Outcome:
        t0 = time.perf_counter()
        spin(steps)
        return Outcome(quadratic(handle.config), time.perf_counter() - t0)

    def cpu_process(handle: TrialHandle) -> Outcome:
        t0 = time.perf_counter()
        pool.submit(spin, steps).result()
        return Outcome(quadratic(handle.config), time.perf_counter() - t0)

    def pool_only(workers: int) -> float:
        t0 = time.perf_counter()
        if workers == 1:
            for _ in range(n):
                pool.submit(spin, steps).result()
        else:
            list(pool.map(spin, [steps] * n))
        return time.perf_counter() - t0

    out: dict[str, Any] = {"trials_per_run": n, "spin_steps_per_trial": steps}
    def control(key: str) -> None:
        one, two = pool_only(1), pool_only(2)
        out[key] = {"workers1_s": round(one, 2), "workers2_s": round(two, 2), "ratio": round(one / two, 2)}

    try:
        control("control_cpu_pool_without_loop_before")
        with tempfile.TemporaryDirectory(prefix="hp-bench-par-") as d:
            for name, objective in (("sleep_1s", sleep), ("cpu_1s_in_thread", cpu_thread), ("cpu_1s_in_process", cpu_process)):
                row: dict[str, Any] = {}
                for workers in (1, 2):
                    res = loop_run(_sqlite(d, f"{name}{workers}"), n, 0, workers=workers, objective=objective)
                    row[f"workers{workers}"] = {
                        "wall_s": round(res["wall"], 2), "trials_per_min": round(60 * n / res["wall"], 1),
                        "median_trial_s": round(statistics.median(res["trial_seconds"]), 3), "complete": res["complete"]}
                row["ratio"] = round(row["workers2"]["trials_per_min"] / row["workers1"]["trials_per_min"], 2)
                out[name] = row
        control("control_cpu_pool_without_loop_after")
    finally:
        pool.shutdown()
    return out


def assistant(n: int) -> dict[str, Any]:
    """`Assistant(workers=1)` vs `workers=2` (SandboxExecutor), random forest on breast_cancer;
    runs in the order 1, 2, 2, 1 after a warm-up, summed per worker count."""
    from hyperpilot import Assistant

    out: dict[str, Any] = {"data": "sklearn:breast_cancer", "model": "random_forest", "sampler": "random", "n_trials": n,
                           "runs": []}
    configs: dict[int, list[str]] = {}
    old = os.environ.get("HYPERPILOT_HOME")
    try:
        with tempfile.TemporaryDirectory(prefix="hp-bench-asst-") as home:  # warm-up: starts both sandbox workers
            os.environ["HYPERPILOT_HOME"] = home
            task = Task(data="sklearn:breast_cancer", models=["random_forest"], n_trials=2, seed=1, cv_folds=5)
            Assistant(llm="none", memory=None, workers=2, sampler="random").solve(task)
        for workers in (1, 2, 2, 1):
            with tempfile.TemporaryDirectory(prefix="hp-bench-asst-") as home:
                os.environ["HYPERPILOT_HOME"] = home
                task = Task(data="sklearn:breast_cancer", models=["random_forest"], n_trials=n, seed=0, cv_folds=5)
                start = time.perf_counter()
                result = Assistant(llm="none", memory=None, workers=workers, sampler="random").solve(task)
                wall = time.perf_counter() - start
                trials = result.trials
                configs[workers] = sorted(json.dumps(c, sort_keys=True) for c in trials.config)
                frozen = optuna.load_study(study_name=result.study_name, storage=studies.storage()).trials
                span = (max(t.datetime_complete for t in frozen) - min(t.datetime_start for t in frozen)).total_seconds()
                out["runs"].append({
                    "workers": workers, "wall_s": round(wall, 2), "loop_s": round(span, 2),
                    "trial_s_sum": round(float(trials.seconds.fillna(0).sum()), 2),
                    "trial_s": [round(float(x), 2) for x in trials.seconds],
                    "complete": int((trials.state == "COMPLETE").sum()), "cv_score": round(result.cv_score, 4)})
    finally:
        if old is None:
            os.environ.pop("HYPERPILOT_HOME", None)
        else:
            os.environ["HYPERPILOT_HOME"] = old
    for w in (1, 2):
        runs = [r for r in out["runs"] if r["workers"] == w]
        wall, loop = sum(r["wall_s"] for r in runs), sum(r["loop_s"] for r in runs)
        out[f"workers{w}"] = {"trials_per_min": round(60 * n * len(runs) / wall, 1),
                              "trials_per_min_in_loop": round(60 * n * len(runs) / loop, 1),
                              "median_trial_s": round(statistics.median(x for r in runs for x in r["trial_s"]), 3)}
    out["ratio"] = round(out["workers2"]["trials_per_min"] / out["workers1"]["trials_per_min"], 2)
    out["ratio_in_loop"] = round(out["workers2"]["trials_per_min_in_loop"] / out["workers1"]["trials_per_min_in_loop"], 2)
    out["same_configs"] = configs[1] == configs[2]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per overhead run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each overhead variant (interleaved)")
    parser.add_argument("--parallel-trials", type=int, default=12, help="1-second trials per parallel run")
    parser.add_argument("--assistant", action="store_true", help="also Assistant(workers=1) vs (workers=2), sandboxed")
    parser.add_argument("--assistant-trials", type=int, default=24)
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
        "optuna": optuna.__version__,
    }
    result["overhead"] = overhead(args.trials, args.repeats)
    print(json.dumps(result["overhead"], indent=1), flush=True)
    steps = calibrate()
    result["parallel"] = parallel(args.parallel_trials, steps)
    print(json.dumps(result["parallel"], indent=1), flush=True)
    if args.assistant:
        result["assistant"] = assistant(args.assistant_trials)
        print(json.dumps(result["assistant"], indent=1), flush=True)
    result["load_at_end"] = round(os.getloadavg()[0], 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
