"""`parse_request` / `task_from_text`: a natural-language request → a `Task`.

    "tune a random forest on data.csv to predict churn, maximise F1, 40 trials"

Rules read what is stated plainly (a file or built-in dataset, `predict COLUMN`, metric and
model names and their usual synonyms, `N trials`, `K-fold`, `seed S`, a time limit). An LLM,
when given, reads the same request through the `parse_request` template with every field
offered as an enum of the file's columns, when the rules found no target; its answer
counts only where it is *grounded*: the column is mentioned in the request. Anything
missing or ambiguous (no data, an unknown file, two metrics, no target) raises a
`TaskError` that asks the question — an ungrounded LLM reading is offered as a suggestion
in that question, never run silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, create_model

from hyperpilot.agent.llm.base import LLM
from hyperpilot.cards import model_cards
from hyperpilot.data import SKLEARN_DATASETS, SKLEARN_PREFIX
from hyperpilot.errors import LLMError, TaskError
from hyperpilot.task import Task

METRIC_ALIASES = {
    "f1": ["f1", "f1-score", "f1 score", "f-score", "f-measure"],
    "roc_auc": ["roc auc", "roc_auc", "roc-auc", "auc", "auroc", "area under the roc curve"],
    "accuracy": ["accuracy"],
    "balanced_accuracy": ["balanced accuracy", "balanced_accuracy"],
    "log_loss": ["log loss", "log_loss", "logloss", "log-loss", "cross-entropy", "cross entropy"],
    "rmse": ["rmse", "root mean squared error", "root mean square error", "root-mean-square error"],
    "mse": ["mse", "mean squared error"],
    "mae": ["mae", "mean absolute error"],
    "r2": ["r2", "r^2", "r squared", "r-squared", "coefficient of determination"],
}
MODEL_ALIASES = {
    "hist_gradient_boosting": ["gradient boosting", "gradient-boosting", "gradient boosted trees", "gbm", "hgb", "boosted trees"],
    "svm": ["support vector", "svc", "svr"],
    "knn": ["nearest neighbours", "nearest neighbors", "k-nn", "knn"],
    "logistic_regression": ["logistic regression", "logreg"],
    "mlp": ["neural network", "neural net", "multilayer perceptron", "multi-layer perceptron", "mlp"],
    "mlp_sgd": ["mlp-sgd", "mlp sgd", "mlp with sgd"],
    "random_forest": ["random forest", "rf"],
    "extra_trees": ["extra trees", "extra-trees", "extremely randomised trees", "extremely randomized trees"],
    "decision_tree": ["decision tree", "cart"],
    "adaboost": ["adaboost", "ada boost"],
}
_DATA = re.compile(r"(sklearn:[a-z_]+|[\w./~+-]+\.(?:csv|tsv|parquet|pq))\b", re.I)
_TARGET = re.compile(r"\b(?:predict(?:ing)?|target(?:\s+column)?(?:\s+is|\s*[:=])?|label(?:\s+column)?(?:\s+is)?)"
                     r"\s+(?:the\s+)?(?:column\s+)?[\"'`]?([\w.-]+)", re.I)
_TRIALS = re.compile(r"\b(\d+)\s*(?:trials?|evaluations?|evals|iterations|configs|configurations)\b|\bbudget of (\d+)", re.I)
_FOLDS = re.compile(r"\b(\d+)\s*-?\s*fold", re.I)
_SEED = re.compile(r"\bseed\s*(?:=|of)?\s*(\d+)", re.I)
_TIME = re.compile(r"\b(?:within|in|under|for at most)\s+(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|hours?|h)\b", re.I)
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600}


def parse_request(text: str, llm: LLM | None = None, *, cwd: Path | None = None, **overrides: Any) -> Task:
    """A `Task` for `text`; `overrides` (Task fields) win over what the text says."""
    if not text or not text.strip():
        raise TaskError("the request is empty; say e.g. 'tune a random forest on data.csv to predict churn'")
    fields: dict[str, Any] = {**_rules(text)}
    data = overrides.get("data") or fields.get("data")
    if not data:
        raise TaskError("which data? name a CSV or Parquet file (e.g. churn.csv) or a built-in such as sklearn:iris")
    if not data.startswith(SKLEARN_PREFIX):
        data = _existing(data, cwd)
    fields["data"] = data
    columns = _columns(data, overrides.get("encoding"))
    if columns is None:
        fields.pop("target", None)  # built-in datasets: the target is 'target'
    elif "target" in fields:
        fields["target"] = _column(fields["target"], columns)
        if fields["target"] is None:
            del fields["target"]
    suggestion = None
    if llm is not None:
        suggestion = _ask_llm(llm, text, fields, columns)
    fields.update({k: v for k, v in overrides.items() if v is not None and v != []})
    if columns is not None and not fields.get("target"):
        hint = f" Perhaps '{suggestion}'?" if suggestion else ""
        raise TaskError(f"which column should be predicted? Say 'predict COLUMN' or pass --target; "
                        f"{Path(data).name} has: {', '.join(columns[:30])}.{hint}")
    return Task(**fields)


def _rules(text: str) -> dict[str, Any]:
    low = text.lower()
    out: dict[str, Any] = {}
    files = sorted({m.group(1) for m in _DATA.finditer(text)})
    if not files:
        files = [f"{SKLEARN_PREFIX}{n}" for n in SKLEARN_DATASETS if re.search(rf"\b{n.replace('_', '[ _]')}\b", low)]
    if len(files) > 1:
        raise TaskError(f"which data: {' or '.join(files)}? name one file or dataset")
    if files:
        out["data"] = files[0]
    targets = [m.group(1).rstrip(".,;") for m in _TARGET.finditer(text)]
    if targets:
        out["target"] = targets[0]
    metrics = _find(low, METRIC_ALIASES)
    if len(metrics) > 1:
        raise TaskError(f"which metric should be optimised: {' or '.join(metrics)}? name one")
    if metrics:
        out["metric"] = metrics[0]
    models = _find(low, _model_aliases())
    if models:
        out["models"] = models
    if m := _TRIALS.search(text):
        out["n_trials"] = int(m.group(1) or m.group(2))
    if m := _FOLDS.search(text):
        out["cv_folds"] = int(m.group(1))
    if m := _SEED.search(text):
        out["seed"] = int(m.group(1))
    if m := _TIME.search(text):
        out["timeout"] = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if re.search(r"\bregression\b", low) and not models:
        out["task_type"] = "regression"
    if re.search(r"\bgaussian process|\bgp\b", low):
        out["sampler"] = "gp"
    elif "random search" in low:
        out["sampler"] = "random"
    return out


def _model_aliases() -> dict[str, list[str]]:
    out = {}
    for name, card in model_cards().items():
        title = re.sub(r"\s*\(.*\)", "", card.title.lower())
        out[name] = [name, name.replace("_", " "), title, *MODEL_ALIASES.get(name, [])]
    return out


def _find(low: str, aliases: dict[str, list[str]]) -> list[str]:
    """Names whose aliases occur in `low`, in the order they are mentioned; longer aliases
    first, each span used once ("balanced accuracy" is not also "accuracy")."""
    pairs = sorted(((a, n) for n, names in aliases.items() for a in names), key=lambda p: -len(p[0]))
    found: dict[str, int] = {}
    for alias, name in pairs:
        pattern = rf"(?<![\w-]){re.escape(alias)}(?![\w-])"
        m = re.search(pattern, low)
        if m:
            low = re.sub(pattern, lambda x: " " * len(x.group(0)), low)
            found[name] = min(found.get(name, m.start()), m.start())
    return sorted(found, key=found.__getitem__)


def _existing(data: str, cwd: Path | None) -> str:
    path = Path(data).expanduser()
    if not path.is_absolute() and cwd is not None:
        path = cwd / path
    if not path.is_file():
        raise TaskError(f"the request names '{data}', but there is no such file (looked in {path.parent.resolve()}); "
                        "give the path of an existing CSV or Parquet file")
    return str(path)


def _columns(data: str, encoding: str | None = None) -> list[str] | None:
    if data.startswith(SKLEARN_PREFIX):
        return None
    import pandas as pd

    try:
        if data.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(data).names]
        return [str(c) for c in pd.read_csv(data, nrows=0, sep="\t" if data.lower().endswith(".tsv") else ",",
                                            encoding=encoding).columns]
    except UnicodeError:
        raise TaskError(f"cannot decode the header of '{data}' as {encoding or 'utf-8'}; give the file's encoding, "
                        "e.g. --encoding latin-1") from None
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        raise TaskError(f"cannot read the columns of '{data}': {type(e).__name__}: {e}") from e


def _column(name: str, columns: list[str]) -> str | None:
    for c in columns:
        if c == name:
            return c
    matches = [c for c in columns if c.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _grounded(value: str, text: str) -> bool:
    """True when `value` (or one of its words of 3+ letters) is mentioned in `text`."""
    low = text.lower()
    words = [w for w in re.split(r"[\s_.-]+", value.lower()) if len(w) >= 3] or [value.lower()]
    return any(re.search(rf"(?<!\w){re.escape(w)}", low) for w in words)


def request_schema(columns: list[str]) -> type[BaseModel]:
    """The parse_request answer: the target as an enum of the file's columns, or null."""
    return create_model("Request", target=(Literal[tuple(columns)] | None, None))  # type: ignore[valid-type, arg-type]


def _ask_llm(llm: LLM, text: str, fields: dict[str, Any], columns: list[str] | None) -> str | None:
    """Fill a missing target from the LLM's reading when it is grounded in the request;
    return an ungrounded one as a suggestion for the question. LLM failures change nothing."""
    from hyperpilot.agent.planner import Planner

    if fields.get("target") or not columns:
        return None
    variables = {"text": text, "data": Path(fields["data"]).name, "columns": columns}
    try:
        answer = Planner(llm, retries=1, timeout=30.0).ask("parse_request", variables, request_schema(columns), lambda a: a)
    except LLMError:
        return None
    if answer.target is None:
        return None
    if _grounded(answer.target, text):
        fields["target"] = answer.target
        return None
    return str(answer.target)


def task_from_text(text: str, llm: object = None, **overrides: Any) -> Task:
    """A task from a request such as "tune a random forest on data.csv to predict churn,
    maximise F1, 40 trials"; a missing or ambiguous piece raises a `TaskError` that asks
    for it. `llm` (an `LLM` or a spec) may read what the plain rules miss."""
    from hyperpilot.agent.llm import resolve_llm

    return parse_request(text, resolve_llm(llm), **overrides)  # type: ignore[arg-type]
