"""The chat measurement of issue 12: 20 scripted conversations (`evals/chat_conversations.yaml`,
written before reading the rules) through `hyperpilot.agent.chat.Conversation`, and the
embedded model's time to first token and per turn.

A simulated user sends each conversation's lines in order; when the assistant asks a
question it answers from the conversation's `answers` (by the question's kind: target, data,
models, metric) — a question it has no answer for ends the conversation. The tools are the
real ones except `start_study` / `continue_study`, which record their arguments (checked
against the real argument schema) and return a summary without tuning anything: this
measures the conversation, not the tuning. A conversation is **correct** when the studies it
started or continued are exactly the expected ones, in order (data, target, metric, models,
trials, and time or folds where stated): a study with a wrong field is a wrong guess.

Paths:
    rules      no LLM: keyword rules and the request parser (what `hyperpilot chat` does
               with the embedded model too: it is not asked to route, FACTS.md)
    embedded   SmolLM2-135M (llama.cpp, 1 thread) treated as a capable model
               (`free_proposals` on): it reads each request through the typed request schema
               (target among the columns, metric, models …; the rules' literal reading still
               wins) and would pick each follow-up through the constrained JSON action — but
               llama.cpp cannot build a grammar for that union of every tool's arguments (and
               the process segfaults), so those calls are refused here and the rules route

    .venv/bin/python -m evals.chat_eval                      # rules (seconds)
    flock /tmp/hp-bench.lock nice -n 10 .venv/bin/python -m evals.chat_eval --embedded

Rows are cached in evals/results/chat_eval.jsonl by (path, conversation id): a rerun
resumes; `--fresh` starts over."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel

CONVERSATIONS = Path(__file__).with_name("chat_conversations.yaml")
RESULTS = Path(__file__).parent / "results" / "chat_eval.jsonl"
MAX_QUESTIONS = 4


def make_tables(folder: Path, seed: int = 0) -> None:
    """iris.csv (species), churn.csv (customer_id, …, churned yes/no), houses.csv (house_id, …,
    price), wine.csv (13 measurements, cultivar), patients.csv (scikit-learn's diabetes,
    progression), loans.csv (applicant_id, …, defaulted 0/1)."""
    from sklearn.datasets import load_diabetes, load_iris, load_wine

    rng = np.random.default_rng(seed)
    load_iris(as_frame=True).frame.rename(columns={"target": "species"}).to_csv(folder / "iris.csv", index=False)
    wine = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    wine["cultivar"] = wine["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.to_csv(folder / "wine.csv", index=False)
    load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"}).to_csv(folder / "patients.csv", index=False)
    n = 400
    tenure = rng.integers(1, 72, n)
    charges = rng.uniform(20, 120, n).round(2)
    contract = rng.choice(["month-to-month", "one year", "two year"], n)
    calls = rng.poisson(1.5, n)
    risk = 0.04 * calls - 0.02 * tenure + 0.01 * charges + (contract == "month-to-month") + rng.normal(0, 0.5, n)
    pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(n)], "tenure_months": tenure, "monthly_charges": charges,
                  "total_charges": (tenure * charges).round(2), "contract": contract, "support_calls": calls,
                  "churned": np.where(risk > np.median(risk), "yes", "no")}).to_csv(folder / "churn.csv", index=False)
    sqft = rng.integers(500, 4000, n)
    bedrooms = rng.integers(1, 6, n)
    hood = rng.choice(["north", "south", "east", "west"], n)
    price = 50_000 + 120 * sqft + 10_000 * bedrooms + rng.normal(0, 20_000, n)
    pd.DataFrame({"house_id": np.arange(n), "sqft": sqft, "bedrooms": bedrooms, "bathrooms": rng.integers(1, 4, n),
                  "year_built": rng.integers(1900, 2024, n), "neighborhood": hood,
                  "price": price.round(0)}).to_csv(folder / "houses.csv", index=False)
    income = rng.uniform(15_000, 150_000, n).round(0)
    amount = rng.uniform(1_000, 50_000, n).round(0)
    score = rng.integers(300, 850, n)
    odds = amount / income * 3 - (score - 575) / 150 + rng.normal(0, 0.5, n)
    pd.DataFrame({"applicant_id": np.arange(10_000, 10_000 + n), "income": income, "loan_amount": amount,
                  "credit_score": score, "employment_years": rng.integers(0, 40, n),
                  "purpose": rng.choice(["car", "home", "education", "business"], n),
                  "defaulted": (odds > np.quantile(odds, 0.7)).astype(int)}).to_csv(folder / "loans.csv", index=False)


class Recorder:
    """A stand-in for a study tool: checks the arguments with the tool's own schema, records
    them and answers with a summary of a study that did not run."""

    def __init__(self, name: str, args_schema: type[BaseModel], description: str, calls: list[dict[str, Any]]) -> None:
        self.name, self.args_schema, self.description, self.calls = name, args_schema, description, calls

    def invoke(self, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002 - the LangChain name
        try:
            args = self.args_schema.model_validate(input).model_dump()
        except Exception as e:  # noqa: BLE001 - a bad argument is the tool's one-line error
            return {"error": f"invalid arguments for {self.name}: {str(e).splitlines()[0]}"}
        self.calls.append({"tool": self.name, **args})
        study = args.get("study") or f"study-{len(self.calls)}"
        return {"study": study, "task": "recorded", "metric": args.get("metric") or "accuracy",
                "best_model": (args.get("models") or ["hist_gradient_boosting"])[0], "best_config": {},
                "cv_score": 0.5, "test_score": None, "n_trials": args.get("n_trials") or args.get("more_trials") or 0,
                "n_failed": 0, "n_pruned": 0, "wall_seconds": 0.0, "model_path": "model.joblib",
                "report_path": "report.md"}


def tools(folder: Path, calls: list[dict[str, Any]]) -> list[Any]:
    from hyperpilot.sandbox import InProcessExecutor
    from hyperpilot.tools import TOOLS, Runtime, all_tools

    runtime = Runtime(executor=InProcessExecutor(), llm="none", memory=False, cwd=folder)
    out: list[Any] = []
    for t in all_tools(runtime):
        out.append(Recorder(t.name, TOOLS[t.name].args, t.description, calls)
                   if t.name in ("start_study", "continue_study") else t)
    return out


def question_kind(text: str) -> str:
    low = text.lower()
    if "column" in low or "predict" in low or "target" in low:
        return "target"
    if "data" in low or "file" in low:
        return "data"
    if "model" in low:
        return "models"
    if "metric" in low:
        return "metric"
    return "other"


def matches(call: dict[str, Any], expected: dict[str, Any], task_type: str) -> list[str]:
    """The expected fields `call` got wrong (empty: right)."""
    from hyperpilot.metrics import DEFAULT_METRIC, get_metric
    from hyperpilot.task import DEFAULT_MODELS

    (tool, want), = expected.items()
    if call["tool"] != tool:
        return [f"tool {call['tool']} (expected {tool})"]
    wrong = []
    for key, value in want.items():
        got = call.get(key)
        if key == "data":
            got = got if str(got).startswith("sklearn:") else Path(str(got)).name
        elif key == "target" and value is None:
            got = None if got in (None, "target") else got
        elif key == "metric":
            got = None if got is None else get_metric(got).name
            if value is None and got == DEFAULT_METRIC[task_type]:  # type: ignore[index]
                got = None
        elif key == "models":
            default = sorted(DEFAULT_MODELS[task_type])  # type: ignore[index]
            got, value = sorted(got or []) or default, sorted(value) or default  # none given: the same study as the default
        if got != value:
            wrong.append(f"{key}={got!r} (expected {value!r})")
    return wrong


def run_one(case: dict[str, Any], folder: Path, llm: Any) -> dict[str, Any]:
    from hyperpilot.agent.chat import Conversation

    calls: list[dict[str, Any]] = []
    chat = Conversation(tools(folder, calls), llm, name="eval", cwd=folder, save=False)
    answers = dict(case.get("answers") or {})
    turns: list[dict[str, Any]] = []
    questions: list[str] = []
    stuck = ""
    pending = list(case["say"])
    while pending and not stuck:
        text = pending.pop(0)
        while True:
            start = time.perf_counter()
            reply = chat.turn(text)
            turns.append({"user": text, "kind": reply.kind, "tool": reply.tool, "seconds": round(time.perf_counter() - start, 3),
                          "reply": reply.text[:300]})
            if reply.kind != "question":
                break
            kind = question_kind(reply.text)
            questions.append(kind)
            if kind not in answers or len(questions) > MAX_QUESTIONS:
                stuck = f"asked a {kind} question it cannot get answered: {reply.text[:160]}"
                break
            text = answers[kind]
    expected = case["expect"]
    wrong: list[str] = []
    for i, want in enumerate(expected):
        if i >= len(calls):
            wrong.append(f"no {next(iter(want))} call #{i + 1}")
            continue
        wrong += [f"#{i + 1} {w}" for w in matches(calls[i], want, case["task_type"])]
    if len(calls) > len(expected):
        wrong.append(f"{len(calls) - len(expected)} extra study call(s)")
    return {"id": case["id"], "correct": not wrong and not stuck, "wrong": wrong, "stuck": stuck,
            "questions": questions, "needs_question": bool(case.get("needs_question")),
            "calls": calls, "turns": turns}


class TimedEmbedded:
    """The embedded model with a clock on each call: time to the first streamed token and
    the whole call. Built lazily (llama.cpp is only imported for --embedded)."""

    def __new__(cls) -> Any:
        from hyperpilot.agent.llm import EmbeddedLLM
        from hyperpilot.agent.llm.base import Completion, LLMTimeout, LLMUnavailable

        class Timed(EmbeddedLLM):
            def __init__(self) -> None:
                super().__init__(seed=0)
                self.free_proposals = True  # measured as if it could route: the question this answers
                self.timings: list[dict[str, Any]] = []

            def _chat(self, messages: Any, schema: Any, max_tokens: int, timeout: float) -> Any:
                if schema is not None and schema.get("title") == "Action":
                    # llama.cpp 0.3.36 cannot build a grammar for the whole action union ("number of
                    # rules ... exceeds sane defaults") and the process then segfaults: refused here,
                    # so the rules route and the model still reads the requests (its typed schema)
                    self.timings.append({"refused": "action schema", "first_token_s": None, "seconds": 0.0, "tokens": 0})
                    raise LLMUnavailable("llama.cpp cannot build a grammar for the action schema")
                with self._lock:
                    llama = self.load()
                    start = time.perf_counter()
                    first: float | None = None
                    parts: list[str] = []
                    fmt = {"type": "json_object", "schema": schema} if schema is not None else None
                    for chunk in llama.create_chat_completion(messages=messages, response_format=fmt,
                                                              max_tokens=max_tokens, temperature=self.temperature,
                                                              seed=self.seed, stream=True):
                        piece = chunk["choices"][0]["delta"].get("content") or ""
                        if piece and first is None:
                            first = time.perf_counter() - start
                        parts.append(piece)
                        if time.perf_counter() - start > timeout:
                            raise LLMTimeout(f"the embedded model took longer than {timeout:g} s")
                    seconds = time.perf_counter() - start
                    tokens = sum(bool(p) for p in parts)
                    self.timings.append({"first_token_s": None if first is None else round(first, 3),
                                         "seconds": round(seconds, 3), "tokens": tokens, "schema": schema is not None})
                    return Completion("".join(parts), max(0, int(llama.n_tokens) - tokens), tokens, seconds)

        return Timed()


def load_rows(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            rows[(row["path"], row["id"])] = row
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    lines = ["| path | correct | stuck on a question | wrong study | questions asked (needed) | turn s median / max |",
             "|---|---|---|---|---|---|"]
    for path in ("rules", "embedded"):
        mine = [r for r in rows if r["path"] == path]
        if not mine:
            continue
        turn_s = [t["seconds"] for r in mine for t in r["turns"]]
        asked = sum(bool(r["questions"]) for r in mine)
        needed = sum(r["needs_question"] for r in mine)
        lines.append(f"| {path} | {sum(r['correct'] for r in mine)}/{len(mine)} | {sum(bool(r['stuck']) for r in mine)} | "
                     f"{sum(bool(r['wrong']) and not r['stuck'] for r in mine)} | {asked} ({needed}) | "
                     f"{statistics.median(turn_s):.2f} / {max(turn_s):.2f} |")
    every = [c for r in rows if r["path"] == "embedded" for c in r.get("llm_calls", [])]
    timed = [c for c in every if not c.get("refused")]
    if len(every) > len(timed):
        lines.append(f"\nembedded: {len(every) - len(timed)} action choices refused (llama.cpp cannot build the "
                     "action grammar); the rules routed those turns")
    if timed:
        first = [c["first_token_s"] for c in timed if c["first_token_s"] is not None]
        lines.append("")
        lines.append(f"embedded model: {len(timed)} calls, time to first token median {statistics.median(first):.2f} s "
                     f"(p90 {np.quantile(first, 0.9):.2f}, max {max(first):.2f}), whole call median "
                     f"{statistics.median(c['seconds'] for c in timed):.2f} s (max {max(c['seconds'] for c in timed):.2f}), "
                     f"{statistics.median(c['tokens'] for c in timed):.0f} tokens per answer (median)")
    return "\n".join(lines)


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """The variables set for the run, restored after (a test may call `main`)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.chat_eval", description=__doc__)
    parser.add_argument("--embedded", action="store_true", help="also the embedded model (slow: run under the bench lock)")
    parser.add_argument("--only", default="", help="comma-separated conversation ids")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--fresh", action="store_true", help="ignore the cache")
    parser.add_argument("-v", "--verbose", action="store_true", help="every conversation's turns and what went wrong")
    args = parser.parse_args(argv)
    cases = yaml.safe_load(CONVERSATIONS.read_text(encoding="utf-8"))
    if args.only:
        cases = [c for c in cases if c["id"] in args.only.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = {} if args.fresh else load_rows(out)
    if args.fresh and out.exists():
        out.unlink()
    paths = ["rules", *(["embedded"] if args.embedded else [])]
    llm: Any = None
    with tempfile.TemporaryDirectory() as tmp, _environ(HYPERPILOT_HOME=str(Path(tmp) / "home"), HYPERPILOT_LLM="none"):
        folder = Path(tmp)
        make_tables(folder)
        for path in paths:
            for case in cases:
                if (path, case["id"]) in cache:
                    continue
                if path == "embedded" and llm is None:
                    llm = TimedEmbedded()
                before = len(llm.timings) if path == "embedded" else 0
                row = {"path": path, **run_one(case, folder, llm if path == "embedded" else None)}
                if path == "embedded":
                    row["llm_calls"] = llm.timings[before:]
                cache[(path, case["id"])] = row
                with out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row, default=str) + "\n")
                print(f"{path:9} {case['id']:34} {'ok' if row['correct'] else 'WRONG'} {row['stuck'] or '; '.join(row['wrong'])}",
                      flush=True)
    rows = [r for r in cache.values() if r["id"] in {c["id"] for c in cases} and r["path"] in paths]
    if args.verbose:
        for r in rows:
            print(f"\n== {r['path']} {r['id']}: {'ok' if r['correct'] else 'WRONG'} {r['stuck']} {r['wrong']}")
            for t in r["turns"]:
                print(f"  you> {t['user']}\n  [{t['kind']} {t['tool'] or ''} {t['seconds']}s] {t['reply'][:200]}")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
