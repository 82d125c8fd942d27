"""The hybrid (BO + an LLM picking among BO's own candidates) against `tpe+default` and
hyperpilot's BO alone, on the `fast` suite (or `--suite llambo`), with the embedded model or
an OpenAI-compatible endpoint.

Methods (each on the problem's objective, 5-fold CV, fixed data seed; trials in-process):
- `hyperpilot-llm-R`: `Assistant(llm="none", memory=None)` + `LLMProposer(EmbeddedLLM(seed), rate=R)`:
  the card default, then at R of the steps the embedded model picks one of BO's 4
  candidates by the log-probabilities of their letters (`EmbeddedLLM.choose`);
- `hyperpilot-llm-endpoint-R`: the same policy through `OpenAICompatLLM` (`--endpoint URL#MODEL`,
  or `--serve`: this benchmark starts llama.cpp's server on 127.0.0.1 with the bundled
  SmolLM2 GGUF, one thread, and stops it at the end); the endpoint answers the letter as
  JSON (`LLM.choose`'s default path);
- baselines from evals/results/fast.jsonl (`python -m evals run --suite fast`): `random`
  (the normalising baseline), `tpe+default`, `hyperpilot-bo`.

Cells are cached per (problem, method, seed) in evals/results/fast-llm-pick.jsonl
(resumable: rerun the same command and it goes on; seeds run outermost, so a partial run
covers every problem); the planner's accounting per run goes to
evals/results/llm_pick_planner.jsonl.

    flock /tmp/hp-bench.lock nice -n 10 .venv/bin/python -m evals.llm_hybrid run --seeds 3 --rates 0.1
    flock /tmp/hp-bench.lock nice -n 10 .venv/bin/python -m evals.llm_hybrid run --seeds 1 --rates 0.1 --serve
    HYPERPILOT_API_KEY=... .venv/bin/python -m evals.llm_hybrid run --endpoint https://HOST/v1#MODEL --out mine.jsonl
    .venv/bin/python -m evals.llm_hybrid report
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from evals.methods import Method, Trace
from evals.methods.hyperpilot import Hyperpilot
from evals.problems import Problem, get_problems
from evals.report import leaderboard_markdown, paired_markdown, versus_markdown
from evals.runner import RESULTS, load_rows, run_cells

OUT = RESULTS / "fast-llm-pick.jsonl"
PLANNER_OUT = RESULTS / "llm_pick_planner.jsonl"
BASELINES = RESULTS / "fast.jsonl"
BASELINE_METHODS = ("random", "tpe+default", "hyperpilot-bo")


class Hybrid(Hyperpilot):
    """hyperpilot with `make_llm(seed)` picking at `rate`; records the planner's accounting."""

    def __init__(self, name: str, rate: float, make_llm: Callable[[int], Any], planner_out: Path) -> None:
        super().__init__(name, llm="none", memory=None)
        self.rate, self.make_llm, self.planner_out = rate, make_llm, planner_out

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        from hyperpilot.agent.policy import LLMProposer

        proposer = LLMProposer(self.make_llm(seed), rate=self.rate)
        self.assistant_kwargs["proposers"] = [proposer]
        trace = super().run(problem, budget, seed)
        with self.planner_out.open("a") as f:
            f.write(json.dumps({"problem": problem.name, "method": self.name, "seed": seed, "budget": budget,
                                "wall_seconds": round(trace.wall_seconds, 3), "stats": proposer.planner.stats.to_dict(),
                                "proposed": proposer._proposed, "used": proposer._used}) + "\n")  # noqa: SLF001
        return trace


def embedded(seed: int) -> Any:
    from hyperpilot.agent.llm import EmbeddedLLM

    return EmbeddedLLM(seed=seed)


def endpoint(spec: str) -> Callable[[int], Any]:
    """An `OpenAICompatLLM` for `URL#MODEL` that only picks (as the embedded model does)."""
    url, _, model = spec.partition("#")
    if not model:
        raise SystemExit(f"--endpoint {spec!r} names no model; append it after '#', e.g. {url}#my-model")

    def make(seed: int) -> Any:
        from hyperpilot.agent.llm import OpenAICompatLLM

        return OpenAICompatLLM(model, base_url=url, free_proposals=False, seed=seed)

    return make


@contextmanager
def llama_server() -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on 127.0.0.1 with the bundled model; yields `URL#MODEL`."""
    from hyperpilot.agent.llm import LLMUnavailable
    from hyperpilot.testing.llama_server import MODEL
    from hyperpilot.testing.llama_server import llama_server as serve

    try:
        with serve() as url:
            yield f"{url}#{MODEL}"
    except LLMUnavailable as e:
        raise SystemExit(str(e)) from None


def report(rows: list[dict[str, Any]], planner_path: Path = PLANNER_OUT, suite: str = "fast") -> str:
    """Leaderboard, paired sign tests against tpe+default, the hybrids against BO alone cell
    by cell, and what the planner cost."""
    hybrids = sorted({r["method"] for r in rows if r["method"].startswith("hyperpilot-llm-")})
    problems = {r["problem"] for r in rows if r["method"] in hybrids}
    seeds = {r["seed"] for r in rows if r["method"] in hybrids}
    rows = [r for r in rows if r["problem"] in problems and r["seed"] in seeds]
    out = [leaderboard_markdown(rows, f"Hybrid (LLM picks among BO's candidates), {len(problems)} {suite} problems, "
                                      f"seeds {sorted(seeds)}"), "", paired_markdown(rows, "tpe+default"), ""]
    for m in hybrids:
        out += [f"**{m} against tpe+default** (mean normalised score over problems):", "",
                versus_markdown(rows, m, "tpe+default"), ""]
    by_cell = {(r["problem"], r["method"], r["seed"]): r for r in rows}
    out += ["Per cell (problem, seed), best loss against `hyperpilot-bo` at n trials (equal: within 1e-9, "
            "relative; regression losses differ in the last digit from run to run), and the cells whose first 10 "
            "configs are those of `hyperpilot-bo` (the LLM first acts at trial 11 at rate 0.1):", "",
            "| method | n=10 better / equal / worse | n=20 | n=30 | first 10 configs identical |", "|---|---|---|---|---|"]
    for m in hybrids:
        cells = []
        pairs = [(v, by_cell[(p, "hyperpilot-bo", s)]) for (p, mm, s), v in by_cell.items()
                 if mm == m and (p, "hyperpilot-bo", s) in by_cell]
        for n in (10, 20, 30):
            d = [(min(a["losses"][:n]) - min(b["losses"][:n])) / max(1.0, abs(min(b["losses"][:n]))) for a, b in pairs]
            cells.append(f"{sum(x < -1e-9 for x in d)} / {sum(abs(x) <= 1e-9 for x in d)} / {sum(x > 1e-9 for x in d)}")
        same = sum(a["configs"][:10] == b["configs"][:10] for a, b in pairs)
        out.append(f"| {m} | " + " | ".join(cells) + f" | {same}/{len(pairs)} |")
    planner = [json.loads(line) for line in planner_path.read_text().splitlines()] if planner_path.exists() else []
    planner = list({(p["problem"], p["method"], p["seed"]): p for p in planner
                    if p["problem"] in problems and p["seed"] in seeds}.values())  # the last run of a cell
    if planner:
        out += ["", "Planner cost per run (mean) and the letters picked (A = BO's first candidate):", "",
                "| method | runs | decisions | s/decision | planner s | wall s | fell back | picked |",
                "|---|---|---|---|---|---|---|---|"]
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for p in planner:
            groups[p["method"]].append(p)
        for m, runs in sorted(groups.items()):
            calls = sum(r["stats"]["calls"] for r in runs)
            secs = sum(r["stats"]["seconds"] for r in runs)
            letters: dict[str, int] = defaultdict(int)
            for r in runs:
                for k, v in r["stats"].get("picked", {}).items():
                    letters[k] += v
            out.append(f"| {m} | {len(runs)} | {calls / len(runs):.1f} | {secs / max(calls, 1):.2f} | "
                       f"{secs / len(runs):.1f} | {np.mean([r['wall_seconds'] for r in runs]):.1f} | "
                       f"{sum(r['stats']['fallbacks'] for r in runs)} | "
                       + ", ".join(f"{k} {v}" for k, v in sorted(letters.items())) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.llm_hybrid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--seeds", type=int, default=5)
    run.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. seeds-1 (to split a run)")
    run.add_argument("--budget", type=int, default=30)
    run.add_argument("--rates", default="0.1")
    run.add_argument("--problems", default="", help="comma-separated problems of the suite (default: all)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--endpoint", default="", help="URL#MODEL of an OpenAI-compatible server (key: HYPERPILOT_API_KEY)")
    where.add_argument("--serve", action="store_true", help="start llama.cpp's server on 127.0.0.1 with the bundled model")
    for p in (run, sub.add_parser("report")):
        p.add_argument("--suite", choices=("fast", "llambo"), default="fast")
        p.add_argument("--out", default="", help=f"results file under evals/results/ (default {OUT.name}, or SUITE-llm-pick.jsonl)")
        p.add_argument("--baselines", default="", help="results file holding random, tpe+default, hyperpilot-bo "
                                                          f"(default {BASELINES.name}, or SUITE.jsonl)")
    args = parser.parse_args(argv)
    out = RESULTS / (args.out or f"{args.suite}-llm-pick.jsonl")
    baselines = RESULTS / (args.baselines or f"{args.suite}.jsonl")
    planner_out = PLANNER_OUT if out == OUT else out.with_name(out.stem + "-planner.jsonl")
    if args.cmd == "run":
        problems = get_problems(args.suite, [p for p in args.problems.split(",") if p] or None)
        rates = [float(r) for r in args.rates.split(",") if r]
        if args.serve:
            with llama_server() as spec:
                _run(problems, rates, endpoint(spec), "endpoint-", args, out, planner_out)
        elif args.endpoint:
            _run(problems, rates, endpoint(args.endpoint), "endpoint-", args, out, planner_out)
        else:
            _run(problems, rates, embedded, "", args, out, planner_out)
    rows = [r for r in load_rows(baselines) if r["method"] in BASELINE_METHODS] + load_rows(out)
    print(report(rows, planner_out, args.suite))
    return 0


def _run(problems: list[Problem], rates: list[float], make_llm: Callable[[int], Any], kind: str,
         args: argparse.Namespace, out: Path, planner_out: Path) -> None:
    methods: list[Method] = [Hybrid(f"hyperpilot-llm-{kind}{r:g}", r, make_llm, planner_out) for r in rates]
    for seed in range(args.first_seed, args.seeds):
        run_cells(problems, methods, [seed], args.budget, out)


if __name__ == "__main__":
    raise SystemExit(main())
