"""`HyperpilotSampler` against `TPESampler` through a plain `study.optimize`, as a user runs it.

    nice -n 10 .venv/bin/python -m evals.sampler_vs_tpe --seeds 3 --trials 30               # four problems
    nice -n 10 .venv/bin/python -m evals.sampler_vs_tpe --suite fast --seeds 3 --out evals/results/sampler_vs_tpe_fast.jsonl

Methods, each an `optuna.create_study(sampler=...)` + `study.optimize(objective, n_trials)`
on a few problems of the `fast` suite (the benchmark's model cards, `evals/spaces`):
- `tpe`: `TPESampler(seed=seed)`;
- `tpe+default`: the same, with the card's default config enqueued first (the honest
  baseline: what anyone can do by hand with `study.enqueue_trial`);
- `hyperpilot`: `HyperpilotSampler(card, memory=None)` (card default, then the same TPE);
- `hyperpilot+memory`: `HyperpilotSampler` over a memory imported from the suite's pack
  (`evals/results/fast-memory-pack.jsonl`), the problem's own dataset left out.
The table: mean best-so-far CV score (the problem's metric in its natural sign) after 5,
10, 20 and 30 trials, averaged over seeds, and per method the share of (problem, seed, budget)
cells where it is ahead of / behind `tpe`."""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from evals.problems import BayesmarkProblem
from evals.spaces import bench_card, benchmark_cards
from hyperpilot.space import CategoricalParam, FloatParam, IntParam

PROBLEMS = [("wine", "svm", "accuracy"), ("breast_cancer", "decision_tree", "accuracy"),
            ("iris", "knn", "accuracy"), ("diabetes", "ridge", "mse")]


def fast_problems() -> list[tuple[str, str, str]]:
    """The whole `fast` suite (20 problems) as (dataset, model, metric)."""
    from evals.problems import DATASETS, FAST_MODELS, METRICS

    return [(d, m, METRICS[kind][0]) for d, kind in DATASETS.items() for m in FAST_MODELS[kind]]
BUDGETS = (5, 10, 20, 30)
METHODS = ("tpe", "tpe+default", "hyperpilot", "hyperpilot+memory")
PACK = Path(__file__).parent / "results" / "fast-memory-pack.jsonl"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective_of(problem: BayesmarkProblem) -> Any:
    """A user's objective over the card's space (the card's own parameter names)."""
    space = problem.space()

    def objective(trial: optuna.Trial) -> float:
        config: dict[str, Any] = {}
        for p in space.params:
            if isinstance(p, FloatParam):
                config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            elif isinstance(p, IntParam):
                config[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log)
            elif isinstance(p, CategoricalParam):
                config[p.name] = trial.suggest_categorical(p.name, p.choices)  # type: ignore[arg-type]
        loss = problem.loss(config)
        return loss if math.isfinite(loss) else 1e9

    return objective


def sampler_of(method: str, problem: BayesmarkProblem, seed: int, memory: Any) -> optuna.samplers.BaseSampler:
    from hyperpilot.integrations import HyperpilotSampler

    if method.startswith("tpe"):
        return optuna.samplers.TPESampler(seed=seed)
    card = bench_card(problem.model)
    dataset = f"sklearn:{problem.dataset}"
    if method == "hyperpilot":
        return HyperpilotSampler(card, memory=None, seed=seed)
    return HyperpilotSampler(card, dataset, metric=problem.metric, memory=memory, record=False,
                             exclude_datasets=[dataset], seed=seed)


def run(problem: BayesmarkProblem, method: str, seed: int, n: int, memory: Any) -> list[float]:
    """Best-so-far score (natural sign) after each trial."""
    study = optuna.create_study(direction="minimize", sampler=sampler_of(method, problem, seed, memory))
    if method == "tpe+default":
        study.enqueue_trial(bench_card(problem.model).default_config())
    with benchmark_cards():
        study.optimize(objective_of(problem), n_trials=n)
    best, out = math.inf, []
    for t in study.trials:
        best = min(best, t.value if t.value is not None else math.inf)
        out.append(problem.sign() * best)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=max(BUDGETS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sampler_vs_tpe.jsonl")
    parser.add_argument("--suite", choices=["four", "fast"], default="four",
                        help="four: the four problems above; fast: the whole fast suite (runs resume from --out)")
    args = parser.parse_args(argv)
    from hyperpilot.memory import Memory, import_jsonl

    memory = Memory(Path(tempfile.mkdtemp(prefix="hp-sampler-memory-")) / "memory")
    import_jsonl(memory, PACK)
    problems = [BayesmarkProblem(*p) for p in (fast_problems() if args.suite == "fast" else PROBLEMS)]
    names = {p.name for p in problems}
    cached = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()] if args.out.exists() else []
    rows = [r for r in cached if r["problem"] in names and r["seed"] < args.seeds and len(r["curve"]) >= args.trials]
    done = {(r["problem"], r["method"], r["seed"]) for r in rows}
    for seed in range(args.seeds):  # seed by seed, so a partial run covers every problem
        for problem in problems:
            for method in METHODS:
                if (problem.name, method, seed) in done:
                    continue
                t0 = time.perf_counter()
                curve = run(problem, method, seed, args.trials, memory)
                rows.append({"problem": problem.name, "method": method, "seed": seed, "curve": curve,
                             "seconds": round(time.perf_counter() - t0, 2)})
                with args.out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
    have = {(r["problem"], r["method"], r["seed"]) for r in rows}
    complete = next((s for s in range(args.seeds) if any((p.name, m, s) not in have for p in problems for m in METHODS)),
                    args.seeds)  # the seeds every (problem, method) has
    print(table([r for r in rows if r["seed"] < complete], complete))
    return 0


def table(rows: list[dict[str, Any]], seeds: int) -> str:
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    curve = {(r["problem"], r["method"], r["seed"]): r["curve"] for r in rows}
    budgets = [b for b in BUDGETS if all(len(r["curve"]) >= b for r in rows)]
    lines = [f"| problem | method | {' | '.join(f'best@{b}' for b in budgets)} |",
             "|---|---|" + "---:|" * len(budgets)]
    for p in problems:
        for m in METHODS:
            means = [sum(curve[(p, m, s)][b - 1] for s in range(seeds)) / seeds for b in budgets]
            lines.append(f"| {p} | {m} | {' | '.join(f'{v:.4f}' for v in means)} |")
    lines += ["", "| method vs tpe | " + " | ".join(f"@{b} ahead/behind" for b in budgets) + " |",
              "|---|" + "---:|" * len(budgets)]
    for m in METHODS[1:]:
        cells = []
        for b in budgets:
            ahead = behind = 0
            for p in problems:
                better = -1 if BayesmarkProblem(*p.split("-")[1:]).sign() > 0 else 1  # natural sign: max or min
                for s in range(seeds):
                    d = (curve[(p, m, s)][b - 1] - curve[(p, "tpe", s)][b - 1]) * better
                    ahead += d > 1e-12
                    behind += d < -1e-12
            n = len(problems) * seeds
            cells.append(f"{ahead}/{behind} of {n}")
        lines.append(f"| {m} | {' | '.join(cells)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
