"""The embedded planner LLM on its own: seconds per call, valid-JSON rate, in-range rate, RSS.

Real prompts: for each problem, a short real study (BO trials of the problem's model on
its data) gives the history; then the planner's own templates and schemas are sent to the
model exactly as `LLMProposer` sends them — initial designs with numbers offered as enums,
picks among BO candidates — plus, for comparison, initial designs with *free* numbers
(`minimum`/`maximum` in the schema, which llama.cpp's grammar ignores). One raw call each
(no retries), so the rates are the model's own.

    .venv/bin/python -m evals.llm_calls --problems 8 --picks 6          # ~5 min on 2 cores
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
from hyperpilot.agent.llm import EmbeddedLLM
from hyperpilot.agent.planner import config_schema, space_lines
from hyperpilot.agent.policy import bo_candidates, history_lines
from hyperpilot.agent.proposer import SolveContext
from hyperpilot.agent.study_space import StudySpace
from hyperpilot.cards import DatasetCard, get_model_card
from hyperpilot.data import Dataset, load_dataset, split
from hyperpilot.prompts import fmt_config, render
from hyperpilot.space import CategoricalParam
from hyperpilot.task import Task
from hyperpilot.tools import run_trial

PROBLEMS = [("iris", "knn", "accuracy"), ("wine", "decision_tree", "accuracy"), ("breast_cancer", "svm", "accuracy"),
            ("breast_cancer", "logistic_regression", "accuracy"), ("wine", "svm", "accuracy"),
            ("digits", "decision_tree", "accuracy"), ("diabetes", "ridge", "mse"), ("diabetes", "knn", "mse")]


def free_schema(ctx: SolveContext, k: int) -> type[BaseModel]:
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


def context(dataset: str, model: str, metric: str, n_history: int, seed: int) -> SolveContext:
    task = Task(data=f"sklearn:{dataset}", models=[model], metric=metric, cv_folds=3, n_trials=30, seed=seed,
                study_name="llm-calls")
    data = load_dataset(task.data)
    task = task.resolved("regression" if dataset == "diabetes" else "binary" if dataset == "breast_cancer" else "multiclass")
    X_train, _, y_train, _ = split(data, task)
    card = DatasetCard.profile(Dataset(data.name, X_train, y_train, data.target), task.task_type)  # type: ignore[arg-type]
    study = optuna.create_study(direction=task.direction, sampler=optuna.samplers.RandomSampler(seed=seed))
    ctx = SolveContext(task, study, StudySpace([get_model_card(model)]), card, X_train, y_train)
    for _ in range(n_history):
        trial = study.ask()
        name, config = ctx.space.suggest(trial)
        outcome = run_trial(name, config, X_train, y_train, task)
        if outcome.evaluation is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, outcome.evaluation.value)
    return ctx


def call(llm: EmbeddedLLM, kind: str, messages: list[dict[str, str]], schema: type[BaseModel], max_tokens: int,
         check: Any = None) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        completion = llm.chat(messages, schema=schema.model_json_schema(), max_tokens=max_tokens, timeout=120)
    except Exception as e:  # noqa: BLE001 - measured, not raised
        return {"kind": kind, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
    row: dict[str, Any] = {"kind": kind, "seconds": round(completion.seconds, 3), "prompt_tokens": completion.prompt_tokens,
                           "completion_tokens": completion.completion_tokens, "text": completion.text[:400]}
    try:
        json.loads(completion.text)
        row["valid_json"] = True
    except json.JSONDecodeError:
        row["valid_json"] = False
    try:
        answer = schema.model_validate_json(completion.text)
        row["in_range"] = bool(check(answer)) if check else True
    except ValidationError as e:
        row["in_range"] = False
        row["error"] = str(e.errors()[0]["msg"])[:200]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.llm_calls", description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--picks", type=int, default=6, help="next_candidates calls per problem")
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
    rows: list[dict[str, Any]] = []
    for i, (dataset, model, metric) in enumerate(PROBLEMS[: args.problems]):
        ctx = context(dataset, model, metric, args.history, seed=i)
        space = ctx.space
        variables = {"task": ctx.task, "metric": ctx.task.metric, "direction": ctx.task.direction,
                     "dataset_card": ctx.dataset_card.to_text(), "examples": [], "k": 2,
                     "model_cards": [c.to_text() for c in space.cards.values()],
                     "planned": [f"{model} {fmt_config(get_model_card(model).default_config())}"]}
        offered = create_model("InitialDesign", configs=(list[config_schema(get_model_card(model), True)],  # type: ignore[misc]
                                                         Field(min_length=2, max_length=2)))
        rows.append(call(llm, "initial_design/enum", render("initial_design", **variables, offered=True), offered, 640))
        rows.append(call(llm, "initial_design/range", render("initial_design", **variables, offered=False),
                         free_schema(ctx, 2), 640))
        for j in range(args.picks):
            candidates = bo_candidates(ctx, 4, seed=1000 * i + j)
            lines = [f"{c.model} {fmt_config(c.config)}" for c in candidates]
            pick = create_model("Pick", choice=(Literal[tuple(range(len(lines)))], ...), reason=(str, Field(max_length=120)))
            messages = render("next_candidates", metric=ctx.task.metric, direction=ctx.task.direction,
                              space=space_lines(space), history=history_lines(ctx), n_done=len(ctx.study.trials),
                              examples=[], candidates=lines)
            rows.append(call(llm, "next_candidates/pick", messages, pick, 80))
            # run BO's first candidate, so the history grows as in a study
            space.enqueue(ctx.study, candidates[0].model, candidates[0].config, "bo")
            trial = ctx.study.ask()
            name, config = space.suggest(trial)
            outcome = run_trial(name, config, ctx.X, ctx.y, ctx.task)
            if outcome.evaluation is None:
                ctx.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                ctx.study.tell(trial, outcome.evaluation.value)
        print(f"{dataset}-{model}: {len(rows)} calls so far", flush=True)
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for r in rows:
            f.write(json.dumps({"model": llm.model, "threads": args.threads, **r}) + "\n")
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
