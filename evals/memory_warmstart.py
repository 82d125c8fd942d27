"""Memory warm start on the Bayesmark-style set, leave-one-dataset-out.

    nice .venv/bin/python -m evals.memory_warmstart --seeds 5 --models knn,svm,decision_tree

Problems: scikit-learn's iris, wine, breast_cancer, digits (accuracy) and diabetes (mse) ×
`--models`, with hyperpilot's cards and trainers (Bayesmark's spaces, 80/20 split with a
fixed data seed, `--folds`-fold CV as the objective). Each run is hyperpilot's loop
(`core.loop.StudyLoop` on the core's cross-validation objective): the card default first,
then (warm only) the memory's configs, then hyperpilot's TPE.

1. Cold: `--cold-trials` trials per (dataset, model, seed), no memory. Every cold run is
   stored as a study in a real `Memory` (chromadb + MiniLM, dataset cards profiled from the
   training split) and the lot is written as a memory pack.
2. Warm: `--warm-trials` trials per (dataset, model, seed) with `MemoryProposer`-style
   warm start from `Memory.similar(..., exclude_datasets={dataset})`: the memory holds the
   other four datasets' runs only.
Runs are cached as JSON lines in `--out`, so an interrupted run resumes."""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from evals.methods.hyperpilot import Queued
from evals.problems import DATASETS, BayesmarkProblem
from evals.spaces import bench_card, benchmark_cards
from hyperpilot import studies
from hyperpilot.core import CardDefaults, StudyContext, StudyLoop, StudySpace, TrialRecord
from hyperpilot.memory import Memory, Query, StudyEntry, TrialEntry, import_jsonl, write_pack
from hyperpilot.memory.retrieve import MIX, K, warm_configs
from hyperpilot.task import Task

optuna.logging.set_verbosity(optuna.logging.WARNING)
RESULTS = Path(__file__).resolve().parent / "results"
CHECKPOINTS = (1, 3, 5, 10, 20)


class Problem(BayesmarkProblem):
    def __init__(self, dataset: str, model: str, folds: int) -> None:
        super().__init__(dataset, model, "mse" if DATASETS[dataset] == "reg" else "accuracy")
        self.folds = folds

    def task_fields(self, seed: int) -> dict[str, Any]:
        return {**super().task_fields(seed), "cv_folds": self.folds}


def run(problem: Problem, n: int, seed: int, warm: list[dict[str, Any]]) -> dict[str, Any]:
    """hyperpilot's loop on `problem`: default, `warm` configs, then TPE; scores in the
    metric's natural sign."""
    task = Task(**problem.task_fields(seed)).resolved(problem.task_type())
    study = optuna.create_study(direction=task.direction, sampler=studies.make_sampler(task, 0),
                                pruner=optuna.pruners.NopPruner())  # as the Assistant: Optuna's default would prune after a fold
    ctx = StudyContext(task, study, StudySpace([bench_card(problem.model)]))
    values: list[float | None] = []
    configs: list[dict[str, Any]] = []
    sources: list[str] = []

    def on_trial(record: TrialRecord) -> None:
        values.append(record.value)
        configs.append(dict(record.config))
        sources.append(record.source)

    # the problem's objective is the CV of a task with the same data seed: the same folds as `task`'s
    with benchmark_cards():
        StudyLoop(ctx, problem.objective, [CardDefaults(), Queued(problem.model, warm)], on_trial=on_trial).run(n)
    return {"values": values, "configs": configs, "sources": sources}


def best_at(values: list[float | None], n: int, direction: str) -> float:
    done = [v for v in values[:n] if v is not None]
    if not done:
        return math.nan
    return max(done) if direction == "maximize" else min(done)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--models", default="knn,svm,decision_tree")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--cold-trials", type=int, default=20)
    ap.add_argument("--warm-trials", type=int, default=10)
    ap.add_argument("--k", default=str(K), help="comma-separated k values to run warm")
    ap.add_argument("--out", default=str(RESULTS / "memory_warmstart.jsonl"))
    ap.add_argument("--pack", default=str(RESULTS / "memory_bayesmark_pack.jsonl"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    done = {(r["dataset"], r["model"], r["seed"], r["mode"]) for r in rows}
    problems = [Problem(d, m, args.folds) for d in DATASETS for m in args.models.split(",")]
    t0 = time.perf_counter()

    def cell(p: Problem, seed: int, mode: str, n: int, warm: list[dict[str, Any]]) -> None:
        if (p.dataset, p.model, seed, mode) in done:
            return
        r = {"dataset": p.dataset, "model": p.model, "seed": seed, "mode": mode, **run(p, n, seed, warm)}
        rows.append(r)
        with out.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{p.dataset} {p.model} seed {seed} {mode}: {time.perf_counter() - t0:.0f} s", flush=True)

    for seed in range(args.seeds):
        for p in problems:
            cell(p, seed, "cold", args.cold_trials, [])
    packs = []
    for r in rows:
        if r["mode"] != "cold":
            continue
        p = next(q for q in problems if (q.dataset, q.model) == (r["dataset"], r["model"]))
        card = p.card()
        sid = f"bm-{p.dataset}-{p.model}-seed{r['seed']}/{p.model}"
        study = StudyEntry(id=sid, dataset=card.dataset, task_type=card.task_type, model=p.model, family=card.family,
                           metric=card.metric, direction=card.direction,
                           card_text=card.text, meta_features=card.meta, origin="pack:bayesmark")
        trials = [TrialEntry(study_id=sid, number=i, model=p.model, config=c, score=v, source=s,
                             status="complete" if v is not None else "failed")
                  for i, (v, c, s) in enumerate(zip(r["values"], r["configs"], r["sources"], strict=False))]
        packs.append((study, trials))
    write_pack(args.pack, packs)
    memory = Memory(Path(tempfile.mkdtemp(prefix="hp-mem-")) / "memory")
    print(import_jsonl(memory, args.pack).summary())
    for k in [int(x) for x in args.k.split(",")]:
        for p in problems:
            card = p.card()
            nbs = memory.similar(Query(card.text, card.meta), [bench_card(p.model)], k, mix=MIX,
                                 exclude_datasets=[f"sklearn:{p.dataset}"])
            warm = [w.config for w in warm_configs(nbs, [bench_card(p.model)], n=k,
                                                   skip=[(p.model, bench_card(p.model).default_config())])]
            for seed in range(args.seeds):
                cell(p, seed, f"warm-k{k}", args.warm_trials, warm)
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    """Per mode: mean over problems of the best-so-far, rank-scaled per problem (0 = the
    worst value any run saw, 1 = the best), at each checkpoint; and the goal check."""
    by_problem: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_problem.setdefault((r["dataset"], r["model"]), []).append(r)
    modes = sorted({r["mode"] for r in rows}, key=lambda m: (m != "cold", m))
    scaled: dict[tuple[str, int], list[float]] = {}
    raw: dict[tuple[str, str, str, int], list[float]] = {}
    for (d, m), rs in by_problem.items():
        direction = "minimize" if DATASETS[d] == "reg" else "maximize"
        sign = 1 if direction == "maximize" else -1
        allv = [sign * v for r in rs for v in r["values"] if v is not None]
        lo, hi = min(allv), max(allv)
        for r in rs:
            for n in CHECKPOINTS:
                if n > len(r["values"]):
                    continue
                b = best_at(r["values"], n, direction)
                raw.setdefault((d, m, r["mode"], n), []).append(b)
                scaled.setdefault((r["mode"], n), []).append((sign * b - lo) / (hi - lo) if hi > lo else 1.0)
    lines = ["| run | " + " | ".join(f"@{n}" for n in CHECKPOINTS) + " |", "|---|" + "---|" * len(CHECKPOINTS)]
    for mode in modes:
        cells = [f"{np.mean(scaled[(mode, n)]):.3f}" if (mode, n) in scaled else "" for n in CHECKPOINTS]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "| problem | cold@1 | cold@5 | cold@10 | cold@20 | " + " | ".join(f"{m}@{n}" for m in modes if m != "cold" for n in (1, 3, 5, 10)) + " |"]
    lines.append("|---|" + "---|" * (4 + 4 * (len(modes) - 1)))
    for (d, m) in sorted(by_problem):
        cells = [f"{np.mean(raw[(d, m, 'cold', n)]):.4g}" for n in (1, 5, 10, 20) if (d, m, "cold", n) in raw]
        cells += [f"{np.mean(raw[(d, m, mode, n)]):.4g}" for mode in modes if mode != "cold" for n in (1, 3, 5, 10)
                  if (d, m, mode, n) in raw]
        lines.append(f"| {d}-{m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
