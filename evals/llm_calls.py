"""The embedded planner LLM on its own: seconds per call, valid-JSON rate, in-range rate, RSS.

Real prompts: for each problem, a short real study (random trials of the problem's model
on its data, run by hyperpilot's `StudyLoop` on the cross-validation objective) gives the history; then the planner's own templates and schemas are sent to the
model exactly as `LLMProposer` sends them — initial designs with numbers offered as enums,
picks among BO candidates (since the picks became letters scored by log-probability,
`evals.llm_latency` measures them in more detail) — plus, for comparison, initial designs with *free* numbers
(`minimum`/`maximum` in the schema, which llama.cpp's grammar ignores). One raw call each
through the planner with no retries, so the rates are the model's own.

    .venv/bin/python -m evals.llm_calls --problems 8 --picks 5    # 56 calls; ~5 min on 2 quiet cores
    .venv/bin/python -m evals.llm_calls --model-path PATH.gguf --chat-format gemma  # another GGUF

Appends one JSON line per call to evals/results/llm_calls.jsonl and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, Field, ValidationError, create_model

from evals.runner import RESULTS
from evals.spaces import bench_card, benchmark_cards
from hyperpilot.agent.llm import EmbeddedLLM
from hyperpilot.agent.planner import AnswerError, Planner
from hyperpilot.agent.policy import N_CANDIDATES, bo_candidates, columns, history_lines
from hyperpilot.cards import DatasetCard
from hyperpilot.core import Proposer, StudyContext, StudyLoop, StudySpace, Suggestion
from hyperpilot.core.cv import CrossValidation
from hyperpilot.core.proposer import config_key
from hyperpilot.data import Dataset, load_dataset, split
from hyperpilot.errors import LLMError
from hyperpilot.prompts import fmt_config
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.space import CategoricalParam
from hyperpilot.task import Task

PROBLEMS = [("iris", "knn", "accuracy"), ("wine", "decision_tree", "accuracy"), ("breast_cancer", "svm", "accuracy"),
            ("breast_cancer", "logistic_regression", "accuracy"), ("wine", "svm", "accuracy"),
            ("digits", "decision_tree", "accuracy"), ("diabetes", "ridge", "mse"), ("diabetes", "knn", "mse")]


def free_schema(ctx: StudyContext, k: int) -> type[BaseModel]:
    """Initial design with numbers as ranges (minimum/maximum in the schema), not enums."""
    card = next(iter(ctx.space.cards.values()))
    fields: dict[str, Any] = {"model": (Literal[card.name], ...)}
    for p in card.space.params:
        if isinstance(p, CategoricalParam):
            fields[p.name] = (Literal[tuple(p.choices)], ...)
        else:
            fields[p.name] = (float if p.type == "float" else int, Field(ge=p.low, le=p.high))
    fields["reason"] = (str, Field(max_length=120))
    item = create_model(f"{card.name}_free", **fields)
    return create_model("FreeDesign", configs=(list[item], Field(min_length=k, max_length=k)))  # type: ignore[valid-type]


class Next(Proposer):
    """Suggests one given config for the next trial (BO's first candidate, in the picks loop)."""

    name = "bo"

    def __init__(self, suggestion: Suggestion) -> None:
        self.suggestion: Suggestion | None = suggestion

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        out, self.suggestion = self.suggestion, None
        return out


def context(dataset: str, model: str, metric: str, n_history: int, seed: int) -> tuple[StudyContext, CrossValidation]:
    """A study with `n_history` random trials of `model`, and its objective."""
    task = Task(data=f"sklearn:{dataset}", models=[model], metric=metric, cv_folds=3, n_trials=30, seed=seed,
                study_name="llm-calls")
    data = load_dataset(task.data)
    task = task.resolved("regression" if dataset == "diabetes" else "binary" if dataset == "breast_cancer" else "multiclass")
    X_train, _, y_train, _ = split(data, task)
    card = DatasetCard.profile(Dataset(data.name, X_train, y_train, data.target), task.task_type)  # type: ignore[arg-type]
    study = optuna.create_study(direction=task.direction, sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=optuna.pruners.NopPruner())  # Optuna's default would prune after a fold
    ctx = StudyContext(task, study, StudySpace([bench_card(model)]), card)
    objective = CrossValidation(InProcessExecutor(), X_train, y_train, task)
    StudyLoop(ctx, objective).run(n_history)
    return ctx, objective


def measured(planner: Planner, kind: str, decide: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """One decision through the planner with no retries: its one call, timed and judged."""
    before = planner.stats.to_dict()
    row: dict[str, Any] = {"kind": kind}
    try:
        decide(*args, **kwargs)
        row.update(valid_json=True, in_range=True)
    except AnswerError as e:
        cause = e.__cause__
        bad_json = isinstance(cause, ValidationError) and any(err["type"] == "json_invalid" for err in cause.errors())
        row.update(valid_json=not bad_json, in_range=False, error=str(e)[:300])
    except LLMError as e:
        row.update(valid_json=False, in_range=False, error=f"{type(e).__name__}: {e}"[:300])
    after = planner.stats.to_dict()
    row.update(seconds=round(after["seconds"] - before["seconds"], 3),
               prompt_tokens=after["prompt_tokens"] - before["prompt_tokens"],
               completion_tokens=after["completion_tokens"] - before["completion_tokens"])
    return row


def main(argv: list[str] | None = None) -> int:
    with benchmark_cards():  # the trials train with the benchmark cards' fixed arguments
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.llm_calls", description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--picks", type=int, default=5, help="next_candidates calls per problem")
    parser.add_argument("--history", type=int, default=6, help="real trials before the first pick")
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--chat-format", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "llm_calls.jsonl"))
    args = parser.parse_args(argv)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    llm = EmbeddedLLM(model_path=args.model_path, chat_format=args.chat_format, n_threads=args.threads)
    t0 = time.perf_counter()
    llm.load()
    load_s = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    planner = Planner(llm, retries=0, timeout=120)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    run = time.strftime("%Y%m%d-%H%M%S")

    def keep(row: dict[str, Any], problem: str) -> None:
        rows.append(row)
        with out.open("a") as f:
            f.write(json.dumps({"run": run, "model": llm.model, "threads": args.threads, "problem": problem, **row}) + "\n")

    for i, (dataset, model, metric) in enumerate(PROBLEMS[: args.problems]):
        ctx, objective = context(dataset, model, metric, args.history, seed=i)
        name = f"{dataset}-{model}"
        planned = [f"{model} {fmt_config(bench_card(model).default_config())}"]
        variables = {"task": ctx.task, "metric": ctx.task.metric, "direction": ctx.task.direction,
                     "dataset_card": ctx.dataset_card.to_text(max_columns=6), "examples": [], "planned": planned}
        tried = {config_key(model, bench_card(model).default_config())}
        keep(measured(planner, "initial_design/enum", planner.initial_design, ctx.space, variables, 2, tried), name)
        free = {**variables, "k": 2, "offered": False, "allowed": [],
                "model_cards": [c.to_text() for c in ctx.space.cards.values()]}
        keep(measured(planner, "initial_design/range",
                      planner.ask, "initial_design", free, free_schema(ctx, 2), lambda a: a, max_tokens=640), name)
        for j in range(args.picks):
            candidates = bo_candidates(ctx, N_CANDIDATES, seed=1000 * i + j)  # as many as the policy offers
            pick_vars = {"metric": ctx.task.metric, "direction": ctx.task.direction, "columns": columns(ctx),
                         "history": history_lines(ctx), "n_done": len(ctx.study.trials)}
            keep(measured(planner, "next_candidates/pick", planner.pick, pick_vars, candidates), name)
            # run BO's first candidate, so the history grows as in a study
            first = Suggestion(candidates[0].model, candidates[0].config, "bo")
            StudyLoop(ctx, objective, [Next(first)]).run(len(ctx.study.trials) + 1)
        print(f"{name}: {len(rows)} calls so far", flush=True)
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(summary(rows, llm.model, load_s, rss0, rss1, rss2))
    return 0


def summary(rows: list[dict[str, Any]], model: str, load_s: float, rss0: float, rss1: float, rss2: float) -> str:
    lines = [f"model {model}: load {load_s:.2f} s; peak RSS {rss0:.0f} MB before load, {rss1:.0f} MB after, "
             f"{rss2:.0f} MB at the end", "",
             "| call | n | s/call (median) | s/call (mean) | completion tokens (mean) | valid JSON | valid + in range |",
             "|---|---|---|---|---|---|---|"]
    kinds = sorted({r["kind"] for r in rows})
    for kind in [*kinds, "all"]:
        sel = [r for r in rows if kind in ("all", r["kind"])]
        secs = sorted(r["seconds"] for r in sel)
        median = secs[len(secs) // 2] if secs else math.nan
        tokens = [r.get("completion_tokens", 0) for r in sel]
        lines.append(f"| {kind} | {len(sel)} | {median:.2f} | {sum(secs) / max(1, len(secs)):.2f} | "
                     f"{sum(tokens) / max(1, len(tokens)):.0f} | {sum(bool(r.get('valid_json')) for r in sel)}/{len(sel)} | "
                     f"{sum(bool(r.get('in_range')) for r in sel)}/{len(sel)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
