"""Does the embedded LLM's pick among BO's candidates have judgement? Every candidate is run.

At each decision of a real study (`evals.llm_calls.context`: random trials of the problem's
model on its data, hyperpilot's cross-validation objective), BO's own 4 candidates
(`policy.bo_candidates`, as the policy asks them) are put to the embedded model exactly as
the policy does (`next_candidates` prompt, `EmbeddedLLM.choose`: the letters scored by
log-probability in one forward pass), and then *all four run*, so each pick can be ranked
against the others (1 = the best of the four, 4 = the worst; ties share). The study keeps
all four as history for the next decision. Compared:

- `A`: BO's first candidate, what BO alone would run (and what the model picks when it
  always says A);
- `raw`: the model's pick as shipped (the most probable letter);
- `calibrated`: the letter whose log-probability rises most over a content-free prompt
  (the same history, every candidate written `N/A`; "calibrate before use", Zhao et al.
  2021), which removes the model's bias for a letter whatever the options say;
- a uniformly random pick, whose expected rank is 2.5.

    nice -n 10 .venv/bin/python -m evals.llm_pick_quality --seeds 3 --decisions 4

Appends one JSON line per decision to evals/results/llm_pick_quality.jsonl (resumable:
cells already there are skipped) and prints the table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from evals.llm_calls import PROBLEMS, Next, context
from evals.runner import RESULTS
from evals.spaces import benchmark_cards
from hyperpilot.agent.llm import EmbeddedLLM
from hyperpilot.agent.planner import config_row
from hyperpilot.agent.policy import N_CANDIDATES, bo_candidates, columns, history_lines
from hyperpilot.core import StudyLoop, Suggestion
from hyperpilot.prompts import render

OUT = RESULTS / "llm_pick_quality.jsonl"
PICKS = ("A", "raw", "calibrated")


def ranks(values: list[float], maximize: bool) -> list[float]:
    """1 = best; ties share the mean of their ranks."""
    v = np.array(values, dtype=float) * (-1.0 if maximize else 1.0)
    return [float(((v < x).sum() + 1 + (v <= x).sum()) / 2) for x in v]


def main(argv: list[str] | None = None) -> int:
    with benchmark_cards():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.llm_pick_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=4, help="decisions per (problem, seed)")
    parser.add_argument("--history", type=int, default=9, help="random trials before the first decision")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["problem"], r["seed"]) for r in rows}
    llm = EmbeddedLLM(n_threads=1)
    for dataset, model, metric in PROBLEMS:
        for seed in range(args.seeds):
            name = f"{dataset}-{model}"
            if (name, seed) in done:
                continue
            ctx, objective = context(dataset, model, metric, args.history, seed=seed)
            maximize = ctx.task.direction == "maximize"
            cell = []
            for j in range(args.decisions):
                ctx.n_done = len(ctx.study.trials)
                candidates = bo_candidates(ctx, N_CANDIDATES, seed=7919 * seed + 1000 + j)
                names = columns(ctx)
                common = {"metric": ctx.task.metric, "direction": ctx.task.direction, "columns": names,
                          "history": history_lines(ctx), "n_done": ctx.n_done}
                letters = [f"{chr(65 + i)}: {config_row(names, c.config)}" for i, c in enumerate(candidates)]
                blank = [f"{chr(65 + i)}: N/A" for i in range(len(candidates))]
                real = llm.choose(render("next_candidates", **common, candidates=letters), len(candidates))
                free = llm.choose(render("next_candidates", **common, candidates=blank), len(candidates))
                shifted = [a - b for a, b in zip(real.scores, free.scores, strict=True)]
                values = []
                for c in candidates:  # every candidate runs: the pick is ranked against the others
                    StudyLoop(ctx, objective, [Next(Suggestion(c.model, c.config, "bo"))]).run(len(ctx.study.trials) + 1)
                    values.append(ctx.study.trials[-1].value)
                if any(v is None for v in values):
                    continue
                r = ranks(values, maximize)
                calibrated = max(range(len(shifted)), key=lambda i: (shifted[i], -i))
                row = {"problem": name, "seed": seed, "decision": j, "n_done": ctx.n_done, "values": values,
                       "ranks": r, "raw": real.index, "calibrated": calibrated,
                       "raw_scores": [round(s, 4) for s in real.scores], "free_scores": [round(s, 4) for s in free.scores],
                       "seconds": round(real.seconds + free.seconds, 3)}
                cell.append(row)
            with out.open("a") as f:
                f.writelines(json.dumps(row) + "\n" for row in cell)
            rows += cell
            print(f"{name} seed {seed}: {len(cell)} decisions", flush=True)
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    """Mean rank of each pick among the 4 candidates (1 best, 4 worst; random 2.5), how often
    it was the best, and the letters picked; paired sign test of each against `A`."""
    rank = {p: np.array([r["ranks"][0 if p == "A" else r[p]] for r in rows]) for p in PICKS}
    lines = [f"{len(rows)} decisions on {len({r['problem'] for r in rows})} problems × "
             f"{len({r['seed'] for r in rows})} seeds, 4 candidates each, all run\n",
             "| pick | mean rank ± 95 % CI (1 best, 4 worst; random 2.5) | best of the 4 | letters A/B/C/D | vs A: better / same / worse, sign test p |",
             "|---|---|---|---|---|"]
    for p in PICKS:
        letters = np.bincount([0 if p == "A" else r[p] for r in rows], minlength=N_CANDIDATES)
        best = float(np.mean(rank[p] == 1.0)) if len(rows) else 0.0
        vs = ""
        if p != "A":
            better, worse = int((rank[p] < rank["A"]).sum()), int((rank[p] > rank["A"]).sum())
            p_value = binomtest(better, better + worse, 0.5).pvalue if better + worse else float("nan")
            vs = f"{better} / {len(rows) - better - worse} / {worse}, p {p_value:.3g}"
        half = 1.96 * rank[p].std(ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else float("nan")
        lines.append(f"| {p} | {rank[p].mean():.2f} ± {half:.2f} | {best:.0%} | {'/'.join(map(str, letters))} | {vs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
