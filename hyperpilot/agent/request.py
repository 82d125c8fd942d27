"""`parse_request` / `task_from_text`: a natural-language request → a `Task`, or one question.

    "tune a random forest on churn.csv to predict Churn, maximise F1, 40 trials, 1h"

**Rules** (always, and the whole offline path) read what is stated plainly: the file or
built-in dataset; the target (`predict X`, `label: X`, `target=X`, matched to the file's
columns case-insensitively and across spaces/underscores); model names and aliases (from the
model cards' `aliases`); metric names (`hyperpilot.metrics` aliases: precision, recall, AUC,
R², …); `N trials` / `try N configs`; time phrases (`5 min`, `1h`, `half an hour`, `in 10m`);
folds, seed, sampler; "which model is best" (compare several suitable cards).

**A capable LLM** (`llm.free_proposals`), when given, reads the same request through the
`parse_request` template with typed fields (enums of the file's columns, the model cards and
the metrics); what the rules read literally wins, and each LLM field counts only when it is
grounded in the request and passes the checks below; an invalid or failed answer leaves the
rules' reading. The embedded model is not asked (measured in docs/benchmarks.md: it never
made a reading better).

**Never a silent guess**: a model or metric that is not a card / not supported (XGBoost,
MAPE, a misspelling), two metrics, two data files, a target that is not a column, a target
that looks like an ID (a different value in every row), or no target at all raises a
`TaskError` whose one line asks the question — with "did you mean" and, for the target, the
likely columns first and every other column after them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field, create_model

from hyperpilot.agent.llm.base import LLM
from hyperpilot.agent.request_rules import (
    NOT_COMPARED,
    OTHER_MODELS,
    metric_aliases,
    model_aliases,
    read_rules,
    unknown_name,
)
from hyperpilot.cards import get_model_card, model_cards
from hyperpilot.data import SKLEARN_PREFIX, id_named, infer_task_type, load_dataset
from hyperpilot.errors import HyperpilotError, LLMError, TaskError
from hyperpilot.metrics import METRICS, TaskType, get_metric
from hyperpilot.task import Task

# "which model is best": one card per kind of model (boosting, bagging, linear, kernel, neighbours)
COMPARE = ("hist_gradient_boosting", "random_forest", "logistic_regression", "ridge", "svm", "knn")
LABEL_WORDS = {"target", "label", "labels", "class", "y", "outcome", "churn", "churned", "default", "fraud", "survived",
               "status", "result", "diagnosis", "species", "price", "quality", "response", "defect", "spam", "sale"}
_VAGUE = {"whether", "if", "which", "who", "what", "how", "when", "something", "it", "a", "an", "my", "our", "from", "with"}
_STOP = {"using", "with", "from", "on", "in", "for", "by", "and", "or", "to", "as", "via", "at"}


@dataclass
class Table:
    """What a request is checked against: the columns of a file and a sample of its rows
    (None for a built-in dataset, whose target is 'target')."""

    name: str
    columns: list[str] | None
    sample: pd.DataFrame | None = None


def parse_request(text: str, llm: LLM | None = None, *, cwd: Path | None = None, **given: Any) -> Task:
    """A `Task` for `text`; `given` (Task fields, e.g. from command-line options) win over
    what the text says; anything missing, unknown or ambiguous raises a `TaskError` question."""
    if not text or not text.strip():
        raise TaskError("the request is empty; say e.g. 'tune a random forest on data.csv to predict churn'")
    given = {k: v for k, v in given.items() if v is not None and not (isinstance(v, list) and not v)}
    rules = read_rules(text)
    for key, question in rules.pop("questions").items():
        if key not in given:
            raise TaskError(question)
    data = given["data"] if "data" in given else rules.pop("data", None)
    if data is None or (isinstance(data, str) and not data.strip()):
        raise TaskError("which data? name a CSV or Parquet file (e.g. churn.csv) or a built-in such as sklearn:iris")
    if isinstance(data, pd.DataFrame):
        table = Table("the DataFrame", [str(c) for c in data.columns], data.head(20_000).rename(columns=str))
    elif not isinstance(data, str):  # (X, y) given in memory: Task checks it
        table = Table("the data", None)
    else:
        if not data.startswith(SKLEARN_PREFIX):
            data = _existing(data, cwd)
        table = _table(data, given.get("encoding"))
    fields: dict[str, Any] = {**rules, "data": data}
    named = fields.pop("named_targets", [])
    suggestion = None
    if llm is not None and llm.free_proposals:
        suggestion = _llm_reading(llm, text, fields, table, named)
    fields.update(given)
    if table.columns is not None and "target" not in given:
        fields["target"] = _target(fields.get("target"), named, table, text, suggestion)
    elif table.columns is None and "target" not in given:
        fields.pop("target", None)  # a built-in dataset's target is 'target'; (X, y) has y
    task_type = given.get("task_type") or fields.get("task_type") or _task_type(table, fields.get("target"))
    every = fields.pop("compare_all", False)
    if fields.pop("compare", False) and not given.get("models") and len(fields.get("models", [])) < 2:
        fields["models"] = compare_models(task_type, every=every)
    if task_type is not None:
        if fields.get("metric"):
            get_metric(fields["metric"], task_type)
        for name in fields.get("models", []):
            get_model_card(name, task_type)
    return Task(**fields)


def compare_models(task_type: TaskType | None, every: bool = False) -> list[str]:
    """The cards "which model is best" compares: one per kind of model (`COMPARE`), or with
    `every` each card for the task type (but `NOT_COMPARED`); a task type not known yet takes
    the cards that do every type."""
    names = [n for n in model_cards() if n not in NOT_COMPARED] if every else list(COMPARE)
    types = [task_type] if task_type else ["binary", "multiclass", "regression"]
    return [n for n in names if all(t in model_cards()[n].task_types for t in types)][: None if every else 5]


# -- the table and the target ------------------------------------------------------------------
def _existing(data: str, cwd: Path | None) -> str:
    path = Path(data).expanduser()
    if not path.is_absolute() and cwd is not None:
        path = cwd / path
    if not path.is_file():
        raise TaskError(f"the request names '{data}', but there is no such file (looked in {path.parent.resolve()}); "
                        "give the path of an existing CSV or Parquet file")
    return str(path)


def _table(data: str, encoding: str | None = None, rows: int = 20_000) -> Table:
    if data.startswith(SKLEARN_PREFIX):
        return Table(data, None)
    try:
        if data.lower().endswith((".parquet", ".pq")):
            sample = pd.read_parquet(data).head(rows)
        else:
            sample = pd.read_csv(data, nrows=rows, sep="\t" if data.lower().endswith(".tsv") else ",", encoding=encoding)
    except UnicodeError:
        raise TaskError(f"cannot decode the header of '{data}' as {encoding or 'utf-8'}; give the file's encoding, "
                        "e.g. --encoding latin-1") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        raise TaskError(f"cannot read the columns of '{data}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    sample.columns = [str(c) for c in sample.columns]
    return Table(Path(data).name, list(sample.columns), sample)


def _squash(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def column_at(words: str, columns: list[str]) -> str | None:
    """The column named at the start of `words` ("sale price, lasso" → SalePrice): the
    longest run of 1–4 words equal to a column up to case, spaces, '_', '-' and quotes."""
    tokens = re.findall(r"[^\s,;:!?()]+", words)[:6]
    by_key: dict[str, list[str]] = {}
    for c in columns:
        by_key.setdefault(_squash(c), []).append(c)
    for start in range(3):  # "customer churn": a column may follow a word or two of its description
        if start >= len(tokens) or (start and tokens[start - 1].lower() in _STOP):
            break
        for k in range(min(4, len(tokens) - start), 0, -1):
            phrase = " ".join(tokens[start:start + k])
            if (key := _squash(phrase)) in by_key and key:
                exact = [c for c in by_key[key] if c == phrase.strip("'\"`.")]
                return (exact or by_key[key])[0]
    return None


def id_like(name: str, values: pd.Series) -> bool:
    """A column that identifies rows rather than describes them: a different value in every
    row and text, or integers that are sorted or named like an ID (`id`, `customerID`, `Unnamed: 0`)."""
    values = values.dropna()
    if len(values) < 10 or values.nunique() != len(values):
        return False
    named = id_named(name)
    if not pd.api.types.is_numeric_dtype(values):
        return True
    integral = pd.api.types.is_integer_dtype(values) or bool((values % 1 == 0).all())
    return named or (integral and (values.is_monotonic_increasing or values.is_monotonic_decreasing))


def _target(stated: str | None, named: list[str], table: Table, text: str, suggestion: str | None) -> str:
    columns, sample = table.columns or [], table.sample
    found = [c for c in (column_at(w, columns) for w in named) if c is not None]
    if stated and stated not in found:
        found.insert(0, stated)
    words = [re.findall(r"[^\s,;:!?()]+", w)[:1] for w in named]
    unknown = [w[0].strip("'\"`.") for w in words if w and w[0].lower().strip("'\"`.") not in _VAGUE]
    if len(set(found)) > 1:
        raise TaskError(f"which column should be predicted: {' or '.join(repr(c) for c in dict.fromkeys(found))}? name one")
    if found:
        target = found[0]
        if sample is not None and id_like(target, sample[target]):
            raise TaskError(f"'{target}' has a different value in every row, like an ID, so a model cannot learn it; "
                            f"{_question(table, text, None, exclude=target)}")
        return target
    if unknown:
        close = [c for c in _close_columns(unknown[0], columns) if sample is None or not id_like(c, sample[c])]
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise TaskError(f"{table.name} has no column '{unknown[0]}'; {hint}{_question(table, text, suggestion)}")
    raise TaskError(_question(table, text, suggestion))


def _close_columns(word: str, columns: list[str]) -> list[str]:
    key = _squash(word)
    by_key = {_squash(c): c for c in columns}
    close = difflib.get_close_matches(key, list(by_key), n=2, cutoff=0.7)
    contains = [c for k, c in by_key.items() if len(key) >= 3 and (key in k or (len(k) >= 3 and k in key))]
    return list(dict.fromkeys([by_key[k] for k in close] + contains))[:3]


def likely_targets(table: Table, text: str) -> list[str]:
    """The columns most likely to be the target, best first: named like a word of the request,
    then named like a label (target, label, class, churn…), then few distinct values; never
    an ID-like column."""
    columns, sample = table.columns or [], table.sample
    words = {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3}
    scores: dict[str, float] = {}
    for i, c in enumerate(columns):
        values = sample[c] if sample is not None else None
        if values is not None and id_like(c, values):
            continue
        parts = set(re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", c).lower()))
        key, score = _squash(c), 0.0
        if any(w == key or w in parts or (len(w) >= 4 and (key.startswith(w) or w.startswith(key))) for w in words):
            score += 4
        elif any(difflib.SequenceMatcher(None, w, key).ratio() >= 0.8 for w in words):
            score += 3
        if parts & LABEL_WORDS or key in LABEL_WORDS or key.startswith(("is", "has")) and len(parts) > 1:
            score += 2
        if values is not None and 2 <= values.nunique() <= 10:
            score += 1
        if i == len(columns) - 1:
            score += 0.5
        if score >= 1:
            scores[c] = score
    return sorted(scores, key=lambda c: -scores[c])[:5]


def _question(table: Table, text: str, suggestion: str | None, exclude: str | None = None) -> str:
    """"Which column should be predicted?" with the likely columns first (an LLM's ungrounded
    reading before them) and every other column after them."""
    likely = [c for c in likely_targets(table, text) if c not in (exclude, suggestion)]
    head = "which column should be predicted? Say 'predict COLUMN' or pass --target."
    if suggestion and suggestion != exclude:
        head += f" Perhaps '{suggestion}' (the LLM's reading)?"
        likely = [suggestion, *likely]
    others = [c for c in table.columns or [] if c not in likely]
    if not likely:
        return f"{head} {table.name} has {len(others)} columns: {', '.join(others)}"
    rest = f"; the other {len(others)}: {', '.join(others)}" if others else ""
    return f"{head} Likely in {table.name}: {', '.join(likely)}{rest}"


def _task_type(table: Table, target: str | None) -> TaskType | None:
    try:
        if table.sample is not None and target in table.sample.columns:
            return infer_task_type(table.sample[target].dropna())
        if table.columns is None and table.name.startswith(SKLEARN_PREFIX):
            return infer_task_type(load_dataset(table.name).y)
    except HyperpilotError:
        return None
    return None


# -- a capable LLM ----------------------------------------------------------------------------
def request_schema(columns: list[str]) -> type[BaseModel]:
    """The `parse_request` answer: every field an enum of what exists, or null."""
    cards = tuple(n for n in model_cards() if n not in NOT_COMPARED)
    target: Any = (Literal[tuple(columns)] | None, None) if columns else (None, None)  # type: ignore[valid-type]
    metric: Any = (Literal[tuple(METRICS)] | None, None)  # type: ignore[valid-type]
    return create_model(  # type: ignore[call-overload, no-any-return]
        "Request",
        target=target,
        metric=metric,
        models=(list[Literal[cards]], Field(default_factory=list, max_length=8)),  # type: ignore[valid-type]
        unknown_model=(str | None, Field(None, max_length=60, description="a model the user named that is not in the list")),
        compare_models=(bool, Field(False, description="the user asks which model is best")),
        n_trials=(int | None, Field(None, ge=1, le=100_000)),
        time_budget_seconds=(float | None, Field(None, gt=0, le=30 * 86_400)),
    )


def _llm_reading(llm: LLM, text: str, fields: dict[str, Any], table: Table, named: list[str]) -> str | None:
    """Fill what the rules did not read from a capable LLM's answer, field by field, where it
    is grounded in the request; an ungrounded target comes back as a suggestion for the
    question. Any LLM failure leaves the rules' reading."""
    from hyperpilot.agent.planner import Planner

    columns = table.columns or []
    variables = {"text": text, "data": table.name, "columns": columns,
                 "models": [f"{n}: {', '.join(a)}" for n, a in model_aliases().items() if n not in NOT_COMPARED],
                 "metrics": [f"{n}: {', '.join(a)}" for n, a in metric_aliases().items()]}
    try:
        answer = Planner(llm, retries=1, timeout=60.0).ask("parse_request", variables, request_schema(columns), lambda a: a)
    except LLMError:
        return None
    low = text.lower()
    if answer.unknown_model and "models" not in fields:
        raise TaskError(unknown_name("model", answer.unknown_model.strip().lower(), OTHER_MODELS, model_aliases()))
    if answer.metric and "metric" not in fields and (_mentions(low, metric_aliases()[answer.metric])
                                                     or re.search(r"metric|score|optimi[sz]|maximi[sz]|minimi[sz]", low)):
        fields["metric"] = answer.metric
    if answer.models and "models" not in fields:
        fields["models"] = [m for m in dict.fromkeys(answer.models) if _mentions(low, model_aliases()[m])] or None
        if fields["models"] is None:
            del fields["models"]
    # the model's "compare" only counts where no model was named and the words ask for a comparison:
    # a small model flags "tune a random forest" as a comparison, which would replace the one model
    if answer.compare_models and "models" not in fields and re.search(r"compar|which model|best model|\bvs\b|versus", low):
        fields["compare"] = True
    if answer.n_trials and "n_trials" not in fields and re.search(rf"\b{answer.n_trials}\b", low):
        fields["n_trials"] = answer.n_trials
    if answer.time_budget_seconds and "timeout" not in fields and re.search(r"hour|minute|second|\bmin|\bsec", low):
        fields["timeout"] = float(answer.time_budget_seconds)
    target = answer.target
    if target is None or fields.get("target") or any(column_at(w, columns) for w in named):
        return None
    if table.sample is not None and id_like(target, table.sample[target]):
        return None
    if _mentions(low, [target]):
        fields["target"] = target
        return None
    return str(target)


def _mentions(low: str, names: list[str]) -> bool:
    """True when one of `names` (or a word of 3+ letters of it, or a near spelling) occurs in `low`."""
    words = set(re.findall(r"[a-z0-9]+", low))
    for name in names:
        parts = [p for p in re.split(r"[\s_.-]+|(?<=[a-z])(?=[A-Z])", name) if len(p) >= 3] or [name]
        for p in (p.lower() for p in parts):
            if re.search(rf"(?<![a-z0-9]){re.escape(p)}", low) or difflib.get_close_matches(p, words, n=1, cutoff=0.85):
                return True
    return False


def task_from_text(text: str, llm: object = None, **given: Any) -> Task:
    """A task from a request such as "tune a random forest on data.csv to predict churn,
    maximise F1, 40 trials"; a missing, unknown or ambiguous piece raises a `TaskError` that
    asks for it. `llm` (an `LLM` or a spec) reads the request too when it is a capable model;
    `given` (Task fields) win over the text."""
    from hyperpilot.agent.llm import resolve_llm

    return parse_request(text, resolve_llm(llm), **given)  # type: ignore[arg-type]
