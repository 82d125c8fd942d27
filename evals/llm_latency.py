"""Seconds per planner decision of the embedded model, one variant per way of asking it.

Each decision is a real one: a short real study of the problem's model (random trials on
its data, hyperpilot's `StudyLoop` on the cross-validation objective, as `evals.llm_calls`)
gives the history, BO's own candidates (`policy.bo_candidates`, the policy's 4) are the
options, then BO's first candidate runs so the history grows between decisions. Every
variant answers the same decision; the cold ones share one `EmbeddedLLM` (`n_threads=1`) and
clear its cache first, each cached one has its own, which sees only its own decisions (as
in a study at rate 0.1, where nothing else calls the model in between):

- `json-long`: the pre-issue pick: the old template (goal, search space, 8 trials best
  first as `name=value`, numbered candidates, "a short reason"), JSON `{"choice": i,
  "reason": "..."}` generated under the grammar, cache cleared first (every call evaluates
  its prompt);
- `json-short`: today's short template (5 best trials and 4 candidates as rows of values,
  the column names once in the system message), JSON `{"choice": LETTER}` generated (`LLM.choose`'s
  default path, the one endpoints take), cache cleared first;
- `json-short-cached`: the same with llama.cpp's prefix reuse (the KV cache of the last
  call's matching prefix is kept, as in a study);
- `logprob-cold`: `EmbeddedLLM.choose` (the letters scored by log-probability in one
  forward pass, nothing generated), cache cleared first;
- `logprob-spaced`: `EmbeddedLLM.choose`, instructions cached, rows written as before the
  compact rows (`5, 0.001, "gini"`: a space after each comma, choice names quoted);
- `logprob`: `EmbeddedLLM.choose` as shipped (the instructions stay cached; compact rows
  `5,.001,gini`: no space, no leading zero, bare choice names).

`--variants` runs a subset (e.g. `--variants logprob-spaced,logprob`); every problem's
per-problem median goes into the table below the overall one.

    flock /tmp/hp-bench.lock nice -n 10 .venv/bin/python -m evals.llm_latency --problems 6 --decisions 4

Appends one JSON line per call to evals/results/llm_latency.jsonl and prints a table. Times
depend on what else runs on the machine: compare the variants of one run side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from optuna.trial import TrialState

from evals.llm_calls import PROBLEMS, Next, context
from evals.runner import RESULTS
from evals.spaces import benchmark_cards
from hyperpilot.agent.llm import LLM, EmbeddedLLM
from hyperpilot.agent.planner import Proposal, config_row
from hyperpilot.agent.policy import HISTORY, N_CANDIDATES, bo_candidates, columns, history_lines
from hyperpilot.core import StudyContext, StudyLoop, Suggestion
from hyperpilot.prompts import fmt_config, fmt_value, render
from hyperpilot.space import CategoricalParam

VARIANTS = ("json-long", "json-short", "json-short-cached", "logprob-cold", "logprob-spaced", "logprob")
OUT = RESULTS / "llm_latency.jsonl"
# the next_candidates template before this change (git show HEAD~:hyperpilot/prompts/next_candidates.yaml)
OLD_SYSTEM = "You are an expert in tuning machine-learning models. You answer with JSON only."
OLD_USER = jinja2.Template("""Goal: {{ direction }} {{ metric }} ({{ "higher" if direction == "maximize" else "lower" }} is better).
Search space:
{% for line in space %}- {{ line }}
{% endfor %}
Trials so far, best first ({{ n_done }} finished):
{% for line in history %}{{ line }}
{% endfor %}
Candidates for the next trial:
{% for line in candidates %}{{ loop.index0 }}: {{ line }}
{% endfor %}
Which candidate is most likely to beat the best score so far? Answer with its number and a short reason.""")


def old_messages(ctx: StudyContext, candidates: list[Proposal]) -> list[dict[str, str]]:
    space = [f"{p.name}: one of {p.choices}" if isinstance(p, CategoricalParam) else
             f"{p.name}: {p.type} in [{p.low:g}, {p.high:g}]{' log' if p.log else ''}"
             for card in ctx.space.cards.values() for p in card.space.params]
    done = sorted(ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value,  # type: ignore[arg-type, return-value]
                  reverse=ctx.task.direction == "maximize")
    history = [f"{float(t.value or 0):.4g} | {' '.join(_model_config(ctx, t.params))}" for t in done[:8]]
    user = OLD_USER.render(direction=ctx.task.direction, metric=ctx.task.metric, space=space, n_done=ctx.n_done,
                           history=history, candidates=[f"{c.model} {fmt_config(c.config)}" for c in candidates])
    return [{"role": "system", "content": OLD_SYSTEM}, {"role": "user", "content": user}]


def spaced_row(names: list[str], config: dict[str, Any]) -> str:
    """A row as written before the compact rows: `5, 0.001, "gini"`."""
    return ", ".join(fmt_value(config[name]) for name in names)


def _is_cold(variant: str) -> bool:
    return variant in ("json-long", "json-short", "logprob-cold")


def _model_config(ctx: StudyContext, params: dict[str, Any]) -> tuple[str, str]:
    model, config = ctx.space.from_params(params)
    return model, fmt_config(config)


def decide(llm: EmbeddedLLM, variant: str, ctx: StudyContext, candidates: list[Proposal]) -> dict[str, Any]:
    """One decision in `variant`: seconds, tokens evaluated or generated, the option chosen."""
    names = columns(ctx)
    row = spaced_row if variant == "logprob-spaced" else config_row
    letters = [f"{chr(65 + i)}: {row(names, c.config)}" for i, c in enumerate(candidates)]
    history = history_lines(ctx)
    if variant == "logprob-spaced":
        done = sorted(ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value,  # type: ignore[arg-type, return-value]
                      reverse=ctx.task.direction == "maximize")
        history = [f"{t.value:.4g} | {spaced_row(names, ctx.space.from_params(t.params)[1])}" for t in done[:HISTORY]]
    short = render("next_candidates", metric=ctx.task.metric, direction=ctx.task.direction, columns=names,
                   history=history, n_done=ctx.n_done, candidates=letters)
    if _is_cold(variant):
        llm.forget()
    start = time.perf_counter()
    if variant == "json-long":
        schema = {"type": "object", "properties": {"choice": {"enum": list(range(len(candidates)))},
                                                   "reason": {"type": "string", "maxLength": 80}},
                  "required": ["choice", "reason"]}
        completion = llm.chat(old_messages(ctx, candidates), schema=schema, max_tokens=320, timeout=600)
        try:
            index = int(json.loads(completion.text)["choice"])
        except (ValueError, KeyError, TypeError):
            index = -1
        tokens, generated = completion.prompt_tokens, completion.completion_tokens
    elif variant.startswith("json-short"):
        choice = LLM.choose(llm, short, len(candidates), timeout=600)  # the generic path: generate the JSON
        index, tokens, generated = choice.index, choice.prompt_tokens, -1
    else:
        choice = llm.choose(short, len(candidates))
        index, tokens, generated = choice.index, choice.prompt_tokens, 0
    return {"variant": variant, "seconds": round(time.perf_counter() - start, 4), "prompt_tokens": tokens,
            "generated_tokens": generated, "choice": index}


def main(argv: list[str] | None = None) -> int:
    with benchmark_cards():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.llm_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--decisions", type=int, default=4, help="decisions per problem")
    parser.add_argument("--history", type=int, default=9, help="real trials before the first decision")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    args = parser.parse_args(argv)
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    cold, cached = EmbeddedLLM(n_threads=1), {v: EmbeddedLLM(n_threads=1) for v in variants if not _is_cold(v)}
    for llm in (cold, *cached.values()):
        llm.load()
    out = Path(args.out)
    run = time.strftime("%Y%m%d-%H%M%S")
    rows: list[dict[str, Any]] = []
    for i, (dataset, model, metric) in enumerate(PROBLEMS[: args.problems]):
        ctx, objective = context(dataset, model, metric, args.history, seed=i)
        for j in range(args.decisions):
            ctx.n_done = len(ctx.study.trials)
            candidates = bo_candidates(ctx, N_CANDIDATES, seed=1000 * i + j)
            for variant in variants:
                row = {"run": run, "problem": f"{dataset}-{model}", "decision": j, "n_done": ctx.n_done,
                       **decide(cached.get(variant, cold), variant, ctx, candidates)}
                rows.append(row)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            first = Suggestion(candidates[0].model, candidates[0].config, "bo")
            StudyLoop(ctx, objective, [Next(first)]).run(len(ctx.study.trials) + 1)
        print(f"{dataset}-{model}: {len(rows)} calls so far", flush=True)
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | decisions | s/decision median | p90 | max | prompt tokens evaluated (mean) | "
             "same choice as `logprob` |", "|---|---|---|---|---|---|---|"]
    ref = {(r["problem"], r["decision"]): r["choice"] for r in rows if r["variant"] == "logprob"}
    for variant in VARIANTS:
        sel = [r for r in rows if r["variant"] == variant]
        if not sel:
            continue
        secs = np.array([r["seconds"] for r in sel])
        same = sum(r["choice"] == ref.get((r["problem"], r["decision"])) for r in sel)
        lines.append(f"| {variant} | {len(sel)} | {np.median(secs):.2f} | {np.quantile(secs, 0.9):.2f} | "
                     f"{secs.max():.2f} | {np.mean([r['prompt_tokens'] for r in sel]):.0f} | {same}/{len(sel)} |")
    lines += ["", "| problem | " + " | ".join(f"{v} s (tokens)" for v in VARIANTS if any(r["variant"] == v for r in rows)) + " |",
              "|---|" + "---|" * len({r["variant"] for r in rows})]
    for problem in dict.fromkeys(r["problem"] for r in rows):
        cells = []
        for variant in VARIANTS:
            sel = [r for r in rows if r["variant"] == variant and r["problem"] == problem]
            if sel:
                cells.append(f"{np.median([r['seconds'] for r in sel]):.2f} ({np.mean([r['prompt_tokens'] for r in sel]):.0f})")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    choices = [r["choice"] for r in rows if r["variant"] == "logprob"]
    if choices:
        counts = np.bincount(choices, minlength=N_CANDIDATES)
        lines += ["", "`logprob` picks by letter: " + ", ".join(f"{chr(65 + i)} {c}" for i, c in enumerate(counts))]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
