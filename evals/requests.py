"""Requests in words → tasks: 40 requests (`evals/requests.jsonl`) over four generated tables
(churn.csv, houses.csv, cancer.csv, wide.csv with 84 columns) and scikit-learn's built-ins,
each with its expected outcome: a task (the fields that matter; those left out must stay at
their defaults, so a dropped time phrase or a silently swapped metric counts) or a question
(words a good question must contain: the unknown name, the right column…).

Each request is read by the request parser as it was before issue 15 (the file at commit
`BEFORE`, imported from a copy) and by the current one, and classified:

    parsed    a task, every checked field as expected
    good      a question where one was expected (or allowed), naming what it should
    weak      a question that was not needed, or that leaves out what it should name
    wrong     a task where a question was expected, or a task with a wrong field (silent)

    .venv/bin/python -m evals.requests               # the table, before and after, no LLM
    .venv/bin/python -m evals.requests --embedded    # + the embedded model's target guesses
    .venv/bin/python -m evals.requests -v            # every request and what each parser did
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from hyperpilot.errors import HyperpilotError

REQUESTS = Path(__file__).with_name("requests.jsonl")
BEFORE = "2a590a5"  # main before issue 15
KINDS = ("parsed", "good", "weak", "wrong")


def make_tables(folder: Path, seed: int = 0) -> None:
    """churn.csv (Telco-like, an ID column), houses.csv (a row index and an Id), cancer.csv
    (scikit-learn's breast cancer, names with spaces, target 'diagnosis'), wide.csv (84 columns,
    the target 'defect' at position 80)."""
    from sklearn.datasets import load_breast_cancer

    rng = np.random.default_rng(seed)
    n = 400
    tenure = rng.integers(0, 73, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.25, 0.2])
    monthly = np.round(rng.uniform(18, 120, n), 2)
    logit = 0.8 - 0.05 * tenure + 1.2 * (contract == "Month-to-month") + 0.01 * (monthly - 60)
    pd.DataFrame({
        "customerID": [f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHJKLMNPQRSTUVWXYZ'), 5))}{i}" for i in range(n)],
        "gender": rng.choice(["Female", "Male"], n), "SeniorCitizen": rng.integers(0, 2, n),
        "Partner": rng.choice(["Yes", "No"], n), "tenure": tenure, "Contract": contract,
        "PaymentMethod": rng.choice(["Electronic check", "Mailed check", "Bank transfer", "Credit card"], n),
        "MonthlyCharges": monthly, "TotalCharges": np.round(monthly * np.maximum(tenure, 1), 2),
        "Churn": np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No"),
    }).to_csv(folder / "churn.csv", index=False)
    m = 300
    qual = rng.integers(1, 11, m)
    area = rng.integers(1500, 20000, m)
    living = rng.integers(500, 4000, m)
    pd.DataFrame({
        "Id": np.arange(1, m + 1), "LotArea": area, "OverallQual": qual, "YearBuilt": rng.integers(1900, 2011, m),
        "GrLivArea": living, "Neighborhood": rng.choice(["NAmes", "CollgCr", "OldTown", "Edwards", "Somerst"], m),
        "GarageCars": rng.integers(0, 4, m),
        "SalePrice": (20000 + 15000 * qual + 40 * living + 2 * area + rng.normal(0, 15000, m)).round().astype(int),
    }).to_csv(folder / "houses.csv")  # with the row index: "Unnamed: 0"
    bunch = load_breast_cancer(as_frame=True)
    cancer = bunch.data.copy()
    cancer["diagnosis"] = np.where(bunch.target == 0, "malignant", "benign")
    cancer.to_csv(folder / "cancer.csv", index=False)
    k = 250
    wide: dict[str, Any] = {"machine_id": [f"M{i:04d}" for i in range(k)], "line": rng.choice(["A", "B", "C"], k), "shift": rng.integers(1, 4, k)}
    wide |= {f"s{j:03d}": np.round(rng.normal(size=k), 3) for j in range(77)}
    wide["defect"] = (wide["s003"] + rng.normal(size=k) > 1).astype(int)
    wide |= {f"s{j:03d}": np.round(rng.normal(size=k), 3) for j in range(77, 81)}
    pd.DataFrame(wide).to_csv(folder / "wide.csv", index=False)


def before_parser(commit: str = BEFORE) -> ModuleType:
    """`hyperpilot/agent/request.py` as it was at `commit`, imported from a copy."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{commit}:hyperpilot/agent/request.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.gettempdir()) / "request_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("request_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_fields(case: dict[str, Any]) -> dict[str, Any]:
    """The task fields a request is checked on: what it says, and the defaults for the rest."""
    task = dict(case["task"])
    defaults: dict[str, Any] = {"models": [], "metric": None, "timeout": None}
    out = {**defaults, **task}
    out.setdefault("n_trials", None if out["timeout"] else 20)
    return out


def classify(case: dict[str, Any], outcome: Any) -> tuple[str, str]:
    """(kind, what happened in a few words) for one request's outcome (a Task or an exception)."""
    if isinstance(outcome, HyperpilotError):
        words = case.get("question") or case.get("question_ok")
        message = str(outcome)
        named = words is not None and all(w.lower() in message.lower() for w in words)
        return ("good" if named else "weak"), message
    if isinstance(outcome, BaseException):
        return "wrong", f"crash: {type(outcome).__name__}: {outcome}"
    if "task" not in case:
        return "wrong", f"no question; ran {_show(outcome)}"
    wrong = []
    for key, want in expected_fields(case).items():
        got = getattr(outcome, key)
        if key == "data":
            got = got if got.startswith("sklearn:") else Path(got).name
        if want == "compare":
            ok = len(got) >= 3
        elif isinstance(want, float | int) and isinstance(got, float | int) and not isinstance(want, bool):
            ok = abs(float(got) - float(want)) < 1e-9
        else:
            ok = got == want
        if not ok:
            wrong.append(f"{key}={got!r} (want {want!r})")
    return ("wrong", "; ".join(wrong)) if wrong else ("parsed", _show(outcome))


def _show(task: Any) -> str:
    return f"target={task.target} models={task.models} metric={task.metric} n_trials={task.n_trials} timeout={task.timeout}"


def run(parse: Any, cases: list[dict[str, Any]], llm: Any = None) -> list[tuple[str, str]]:
    out = []
    for case in cases:
        try:
            outcome: Any = parse(case["text"], llm) if llm is not None else parse(case["text"])
        except HyperpilotError as e:
            outcome = e
        except Exception as e:  # noqa: BLE001 - a crash is a result here
            outcome = e
        out.append(classify(case, outcome))
    return out


def table(rows: dict[str, list[tuple[str, str]]]) -> str:
    lines = ["| parser | parsed correctly | asked a good question | weak question | wrong guess (silent) |",
             "|---|---|---|---|---|"]
    for name, results in rows.items():
        counts = Counter(kind for kind, _ in results)
        lines.append(f"| {name} | " + " | ".join(f"{counts[k]}/{len(results)}" for k in KINDS) + " |")
    return "\n".join(lines)


def embedded_targets(cases: list[dict[str, Any]], folder: Path) -> str:
    """For each request whose target is a column the rules cannot read (they ask), the embedded
    model's answer to the target-only question of the old parser (columns as an enum) against
    the first 'likely' column of the new question."""
    from typing import Literal

    from pydantic import ValidationError, create_model

    from hyperpilot.agent.llm import EmbeddedLLM
    from hyperpilot.agent.request import _table, likely_targets

    llm = EmbeddedLLM()
    hits = {"embedded": 0, "likely first": 0}
    n, seconds = 0, 0.0
    for case in cases:
        want = (case.get("task") or {}).get("target") or next((w for w in case.get("question", []) + case.get("question_ok", [])
                                                               if w in _columns(folder)), None)
        data = (case.get("task") or {}).get("data") or next((f for f in ("churn.csv", "houses.csv", "cancer.csv", "wide.csv")
                                                             if f in case["text"]), None)
        if not want or not data or data.startswith("sklearn:"):
            continue
        table_ = _table(str(folder / data))
        start = time.perf_counter()
        field: Any = (Literal[tuple(table_.columns or [])] | None, None)  # type: ignore[valid-type]
        schema: Any = create_model("Request", target=field)
        messages = [{"role": "system", "content": "You read model-tuning requests. You answer with JSON only. "
                                                  "Use null when the request does not say."},
                    {"role": "user", "content": f'Request: "{case["text"]}"\n\nColumns of {data}: '
                                                f'{", ".join(table_.columns or [])}\n\nWhich column does the user want to predict?'}]
        try:  # the prompt and schema of the parser before issue 15, one call, no retry
            text = llm.chat(messages, schema=schema.model_json_schema(), max_tokens=64, timeout=120).text
            parsed: Any = schema.model_validate_json(text)
            answer = parsed.target
        except (HyperpilotError, ValidationError) as e:
            answer = f"<{type(e).__name__}>"
        seconds += time.perf_counter() - start
        n += 1
        hits["embedded"] += answer == want
        hits["likely first"] += next(iter(likely_targets(table_, case["text"])), None) == want
        print(f"  {case['text'][:60]:60} want {want:12} embedded {answer!s:14} likely {likely_targets(table_, case['text'])[:3]}")
    return (f"target of {n} requests on files: embedded model right {hits['embedded']}/{n} "
            f"({seconds / max(n, 1):.1f} s a call), first 'likely' column of the question right {hits['likely first']}/{n}")


def _columns(folder: Path) -> set[str]:
    return {c for f in folder.glob("*.csv") for c in pd.read_csv(f, nrows=0).columns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.requests", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedded", action="store_true", help="also measure the embedded model's target guesses")
    parser.add_argument("--before", default=BEFORE, help="commit of the 'before' parser")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HYPERPILOT_LLM", "none")
    from hyperpilot.agent.request import task_from_text

    cases = [json.loads(line) for line in REQUESTS.read_text().splitlines() if line.strip()]
    old = before_parser(args.before)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_tables(folder)
        here = Path.cwd()
        os.chdir(folder)
        try:
            rows = {"before (rules, main at " + args.before + ")": run(old.task_from_text, cases),
                    "after (rules)": run(task_from_text, cases)}
            if args.verbose:
                for i, case in enumerate(cases):
                    print(f"{i + 1:2}. {case['text']}")
                    for name, results in rows.items():
                        kind, what = results[i]
                        print(f"    {name.split(' ')[0]:6} {kind:6} {what[:230]}")
            print(table(rows))
            if args.embedded:
                print(embedded_targets(cases, folder))
        finally:
            os.chdir(here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
