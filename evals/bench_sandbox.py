"""Sandbox benchmarks (docs/benchmarks.md, "Sandbox").

1. Per-trial overhead: the same trainer and config, cross-validated (`core.cv.CrossValidation`,
   scored here from the trial's predictions) on `InProcessExecutor` (no sandbox) and on
   `SandboxExecutor` in each available layer, interleaved round by
   round so that machine noise hits all alike. Overhead = median(sandboxed) − median(in
   process). The worker's one-off start (imports) is reported apart.
2. Runner overhead alone: a no-op job through `Sandbox.run` per layer.
3. Parallel workers: scikit-learn with n_jobs=2 — a random-forest fit (2 threads) and a
   cross-validation (2 loky worker processes, started inside the trial) — timed inside a
   bwrap-sandboxed trial process and inside a plain subprocess, in ABBA order; ratio of
   medians (1.0 = unsandboxed speed).

4. `--gpu-check`: on a machine with an NVIDIA GPU, run a probe (device nodes,
   CUDA_VISIBLE_DEVICES, nvidia-smi, a torch matmul when torch is installed, network) in
   every layer with and without a GPU given, plus a timeout with a setsid escapee. It
   imports only the sandbox modules (standard library), so any python3 can run it:
   `python3 evals/bench_sandbox.py --gpu-check`.

Run: `nice -n 10 .venv/bin/python -m evals.bench_sandbox [--rounds N] [--json out.json]`
(`python -m`, from the repository root: the trial handle comes from `evals.problems`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

if "--gpu-check" not in sys.argv:
    from hyperpilot.cards import get_model_card
    from hyperpilot.core.cv import CrossValidation
    from hyperpilot.core.loop import FixedTrial
    from hyperpilot.data import load_dataset
    from hyperpilot.sandbox import InProcessExecutor, Limits, Sandbox, SandboxExecutor, layers
    from hyperpilot.task import Task

PARALLEL_FIT = """
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score
import time
X, y = make_classification(n_samples=3000, n_features=30, random_state=0)
start = time.perf_counter()
RandomForestClassifier(n_estimators=200, n_jobs=2, random_state=0).fit(X, y)  # 2 threads
mid = time.perf_counter()
cross_val_score(RandomForestClassifier(n_estimators=100, random_state=0), X, y, cv=4, n_jobs=2)  # 2 loky processes
RESULT = [mid - start, time.perf_counter() - mid]
"""


def _available() -> list[str]:
    out = []
    if layers.bwrap_status()[0]:
        out.append("bwrap")
    if layers.unshare_status()[0]:
        out.append("unshare")
    return out + ["plain"]


def per_trial(rounds: int, model: str, data: str) -> dict[str, Any]:
    d = load_dataset(data)
    task = Task(data=data, models=[model], cv_folds=5).resolved("binary")
    config = get_model_card(model).default_config()
    executors: dict[str, Any] = {"in_process": CrossValidation(InProcessExecutor(), d.X, d.y, task)}
    startup: dict[str, float] = {}
    for layer in _available():
        ex = CrossValidation(SandboxExecutor(sandbox=Sandbox(Limits(), layer)), d.X, d.y, task)
        start = time.perf_counter()
        ex(FixedTrial(model, config))  # starts the worker: imports, once per worker
        startup[layer] = time.perf_counter() - start
        executors[layer] = ex
    times: dict[str, list[float]] = {k: [] for k in executors}
    values: dict[str, float] = {}
    for _ in range(rounds):
        for name, ex in executors.items():
            start = time.perf_counter()
            out = ex(FixedTrial(model, config))
            times[name].append(time.perf_counter() - start)
            if out.value is None:
                raise RuntimeError(f"{name}: {out.error}")
            values[name] = out.value
    for ex in executors.values():
        ex.executor.close()
    base = statistics.median(times["in_process"])
    return {
        "model": model, "data": data, "rounds": rounds,
        "median_s": {k: round(statistics.median(v), 4) for k, v in times.items()},
        "overhead_ms": {k: round((statistics.median(v) - base) * 1000, 1) for k, v in times.items() if k != "in_process"},
        "worker_start_s": {k: round(v, 2) for k, v in startup.items()},
        "same_value": len({round(v, 12) for v in values.values()}) == 1,
    }


def noop(rounds: int) -> dict[str, float]:
    out = {}
    for layer in _available():
        with Sandbox(Limits(), layer, preload=()) as sb:
            sb.run("hyperpilot.sandbox.job:exec_file", {"file": "p.py"}, files={"p.py": "RESULT = 1"})
            samples = []
            for _ in range(rounds):
                start = time.perf_counter()
                res = sb.run("hyperpilot.sandbox.job:exec_file", {"file": "p.py"}, files={"p.py": "RESULT = 1"})
                samples.append(time.perf_counter() - start)
                if not res.ok:
                    raise RuntimeError(res.error)
            out[layer] = round(statistics.median(samples) * 1000, 1)
    return out


def parallel(rounds: int) -> dict[str, Any]:
    """[threads, loky processes] seconds per round, inside and outside, in ABBA order."""
    inside: list[list[float]] = []
    outside: list[list[float]] = []
    with Sandbox(Limits(), "bwrap" if layers.bwrap_status()[0] else None, preload=("sklearn.ensemble",)) as sb:

        def run_inside() -> None:
            res = sb.run("hyperpilot.sandbox.job:exec_file", {"file": "fit.py"}, files={"fit.py": PARALLEL_FIT})
            if not res.ok:
                raise RuntimeError(res.error)
            inside.append([float(v) for v in res.value])

        def run_outside() -> None:
            done = subprocess.run([sys.executable, "-c", PARALLEL_FIT + "\nprint(*RESULT)"], capture_output=True,
                                  text=True, check=True)
            outside.append([float(v) for v in done.stdout.split()[-2:]])

        for i in range(rounds):
            for step in ((run_inside, run_outside) if i % 2 == 0 else (run_outside, run_inside)):
                step()
        layer = sb.layer

    def ratio(k: int) -> float:
        return round(statistics.median(r[k] for r in inside) / statistics.median(r[k] for r in outside), 3)

    return {"layer": layer, "rounds": rounds, "inside_s": inside, "outside_s": outside,
            "ratio_threads": ratio(0), "ratio_loky_processes": ratio(1)}


GPU_PROBE = r"""
import os, glob, subprocess
info = {"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "dev": sorted(glob.glob("/dev/nvidia*")), "uid": os.getuid()}
try:
    info["smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout.strip()[:80]
except Exception as e:
    info["smi"] = repr(e)
try:
    import torch
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        a = torch.randn(512, 512, device="cuda")
        info["matmul"] = bool(float((a @ a).abs().sum().item()) > 0)
except Exception as e:
    info["torch"] = repr(e)
try:
    import socket
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    info["net"] = "OPEN"
except Exception as e:
    info["net"] = repr(e)
RESULT = info
"""


def gpu_check() -> dict[str, Any]:
    """The GPU probe in every layer; loads hyperpilot.sandbox without hyperpilot's
    dependencies (the package __init__ files are skipped)."""
    import types

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name, path in (("hyperpilot", "hyperpilot"), ("hyperpilot.sandbox", "hyperpilot/sandbox")):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(repo, path)]
        module.__file__ = os.path.join(repo, path, "__init__.py")
        sys.modules.setdefault(name, module)
    from hyperpilot.sandbox import layers as lay
    from hyperpilot.sandbox.limits import Limits as Lim
    from hyperpilot.sandbox.runner import Sandbox as Sbx

    out: dict[str, Any] = {"doctor": [(c.name, c.active, c.detail) for c in lay.doctor()]}
    gpus = lay.gpu_indices()[:1]
    for layer in ("bwrap", "unshare", "plain"):
        for given in ([tuple(gpus)] if gpus else []) + [None]:
            key = f"{layer}, gpus={list(given) if given else None}"
            try:
                with Sbx(Lim(wall_seconds=120, gpus=given), layer, preload=()) as sb:
                    res = sb.run("hyperpilot.sandbox.job:exec_file", {"file": "p.py"}, files={"p.py": GPU_PROBE})
                    escape = "import os\nif os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '765432'])\nwhile True: pass"
                    timed = sb.run("hyperpilot.sandbox.job:exec_file", {"file": "p.py"}, files={"p.py": escape}, timeout=2)
                out[key] = {"probe": res.value if res.ok else res.error, "timeout": timed.error[:40]}
            except Exception as e:  # noqa: BLE001 - a layer that does not work here is a result too
                out[key] = repr(e)
    out["survivors"] = subprocess.run(["pgrep", "-f", "sleep 765432"], capture_output=True, text=True).stdout.split()
    return out


def main() -> None:
    if "--gpu-check" in sys.argv:
        print(json.dumps(gpu_check(), indent=1, default=str))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--model", default="logistic_regression")
    parser.add_argument("--data", default="sklearn:breast_cancer")
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
        "per_trial": per_trial(args.rounds, args.model, args.data),
        "noop_job_ms": noop(args.rounds),
        "parallel_fit": parallel(max(3, args.rounds // 3)),
    }
    result["load_at_end"] = round(os.getloadavg()[0], 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
