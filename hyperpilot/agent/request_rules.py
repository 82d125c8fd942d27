"""The rules of request parsing: what a request states plainly (`read_rules`), read with
regular expressions and the names of the model cards and metrics; a name that is neither a
card nor a metric (XGBoost, MAPE) or a near miss of one ("randm forest") becomes a question.
See `hyperpilot.agent.request`."""

from __future__ import annotations

import difflib
import re
from typing import Any

from hyperpilot.cards import model_cards
from hyperpilot.data import SKLEARN_DATASETS, SKLEARN_PREFIX
from hyperpilot.errors import TaskError
from hyperpilot.metrics import METRICS

NOT_COMPARED = ("custom_code", "torch_cnn", "lora_text")  # a program writer; networks for images and for text
# models people name that have no card -> the closest card for "did you mean" (None: no close one)
OTHER_MODELS: dict[str, str | None] = {
    "xgboost": "hist_gradient_boosting", "xgb": "hist_gradient_boosting", "lightgbm": "hist_gradient_boosting",
    "lgbm": "hist_gradient_boosting", "catboost": "hist_gradient_boosting", "linear regression": "ridge",
    "ols": "ridge", "elastic net": "lasso", "elasticnet": "lasso", "naive bayes": None, "gaussian nb": None,
    "lda": "logistic_regression", "qda": None, "sgd classifier": "logistic_regression", "tabnet": "mlp",
    "deep learning": "mlp", "lstm": None, "arima": None, "prophet": None,
}
# metrics people name that hyperpilot does not compute -> the closest one it does (None: no close one)
OTHER_METRICS: dict[str, str | None] = {
    "mape": "mae", "mean absolute percentage error": "mae", "smape": "mae", "mcc": None, "matthews": None,
    "kappa": None, "cohen's kappa": None, "pr auc": "roc_auc", "average precision": "roc_auc", "precision at k": None,
    "precision@k": None, "brier": "log_loss", "specificity": None, "f2": "f1", "f-beta": "f1", "fbeta": "f1",
    "msle": "rmse", "rmsle": "rmse", "median absolute error": "mae", "explained variance": "r2", "top-k accuracy": None,
    "gini": "roc_auc", "false positive rate": None,
}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
            "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
            "ninety": 90, "hundred": 100, "half an": 0.5, "half a": 0.5, "a quarter of an": 0.25, "quarter of an": 0.25}
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(k) for k in _NUMBERS), key=len, reverse=True)) + ")"
_UNITS = {"h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "m": 60, "min": 60, "mins": 60,
          "minute": 60, "minutes": 60, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1}
_DURATION = re.compile(rf"(?<![\w.]){_NUM}(\s*-?\s*)(hours?|hrs?|minutes?|mins?|seconds?|secs?|h|m|s)\b"
                       r"(\s+and\s+a\s+half)?(?!\s*(?:rows|samples|records|lines|examples|features|columns|per|each|/))", re.I)
_DATA = re.compile(r"(sklearn:[a-z_]+|[\w./~+-]+\.(?:csv|tsv|parquet|pq))\b", re.I)
_TARGET = re.compile(r"\b(?:(?:target|label|outcome|response)(?:\s+column)?(?:\s+is\s+|\s*[:=]\s*|\s+)|"
                     r"(?:predict(?:s|ing)?|forecast(?:s|ing)?|estimat(?:e|es|ing)|classify(?:ing)?)\s+)"
                     r"(?:the\s+)?(?:column\s+)?(?:values?\s+of\s+)?(?:the\s+)?", re.I)
_COUNT = r"(\d+|" + "|".join(k for k, v in _NUMBERS.items() if v >= 2) + ")"
_TRIALS = re.compile(rf"\b{_COUNT}\s+(?:more\s+)?(?:trials?|evaluations?|evals|iterations?|configs?|configurations?|"
                     r"runs|candidates|tries|attempts)\b|\b(?:budget of|n_trials\s*=|trials\s*[:=])\s*(\d+)\b(?!\s*(?:min|sec|h))", re.I)
_FOLDS = re.compile(r"\b(\d+)\s*-?\s*folds?\b|\b(?:folds|cv)\s*[:=]\s*(\d+)", re.I)
_SEED = re.compile(r"\b(?:seed|random[ _]state)\s*(?:=|:|of)?\s*(\d+)", re.I)
_COMPARE = re.compile(r"\b(?:which|what)(?:'s| is)?\s+(?:the\s+)?(?:best\s+)?(?:models?|algorithms?|estimators?|learners?)\b|"
                      r"\bbest\s+(?:models?|algorithms?|estimators?|learners?)\b|\bcompare\b|\bcomparison\b|\bmodel selection\b|"
                      r"\b(?:try|test|evaluate)\s+(?:several|different|multiple|various|many|all|every)\s+(?:the\s+)?(?:models?|algorithms?)", re.I)
_ALL_MODELS = re.compile(r"\b(?:all|every)\s+(?:the\s+)?(?:models?|algorithms?|cards?)\b", re.I)


def read_rules(text: str) -> dict[str, Any]:
    """What the request states plainly, as Task fields, plus `named_targets` (the words after
    `predict`, `target:`…), `compare` ("which model is best"), `compare_all` ("all models")
    and `questions` (Task field -> the question to ask unless an option gives that field)."""
    out: dict[str, Any] = {}
    ask: dict[str, str] = {}
    out["questions"] = ask
    files = sorted({m.group(1) for m in _DATA.finditer(text)})
    low = _blank(text.lower(), [re.escape(f.lower()) for f in files])
    if not files:
        files = [f"{SKLEARN_PREFIX}{n}" for n in SKLEARN_DATASETS if re.search(rf"\b{n.replace('_', '[ _]')}\b", low)]
    if len(files) > 1:
        ask["data"] = f"which data: {' or '.join(files)}? name one file or dataset"
    elif files:
        out["data"] = files[0]
    out["named_targets"] = [text[m.end():m.end() + 80] for m in _TARGET.finditer(text)]
    if m := _TRIALS.search(low):
        out["n_trials"] = int(_number(m.group(1) or m.group(2)))
    if m := _FOLDS.search(low):
        out["cv_folds"] = int(m.group(1) or m.group(2))
    if m := _SEED.search(low):
        out["seed"] = int(m.group(1))
    try:
        if (seconds := read_duration(low)) is not None:
            out["timeout"] = seconds
    except TaskError as e:
        ask["timeout"] = str(e)
    if re.search(r"\bgaussian process|\bgp\b", low):
        out["sampler"] = "gp"
    elif "random search" in low:
        out["sampler"] = "random"
    low = _blank(low, [r"gaussian process(?:es)?(?! regress)", "random search", r"bayesian optimi[sz]ation"])  # samplers
    models, unknown = _find(low, model_aliases(), _other(OTHER_MODELS))
    if unknown:
        ask["models"] = unknown_name("model", unknown[0], OTHER_MODELS, model_aliases())
    if models:
        out["models"] = models
    low = _blank(low, [re.escape(a) for n in models for a in model_aliases()[n]])
    metrics, unknown = _find(low, metric_aliases(), _other(OTHER_METRICS))
    if unknown:
        ask["metric"] = unknown_name("metric", unknown[0], OTHER_METRICS, metric_aliases())
    elif len(metrics) > 1:
        extra = " (f1 balances precision and recall)" if set(metrics) == {"precision", "recall"} else ""
        ask["metric"] = f"which metric should be optimised: {' or '.join(metrics)}{extra}? name one"
    elif metrics:
        out["metric"] = metrics[0]
    if re.search(r"\bregression\b|\bregressor\b", low):
        out["task_type"] = "regression"
    out["compare"] = bool(_COMPARE.search(low))
    out["compare_all"] = bool(_ALL_MODELS.search(low))
    return out


def read_duration(text: str) -> float | None:
    """Seconds of the time budget in `text` ("5 min", "1h30", "half an hour", "in 10m"), or None;
    two different budgets raise a `TaskError`."""
    text = re.sub(r"\b(\d+)h(\d{1,2})\b", r"\1h \2m", text.lower())
    spans: list[tuple[int, int, float]] = []
    for m in _DURATION.finditer(text):
        number, gap, unit, half = m.group(1), m.group(2), m.group(3), m.group(4)
        short = unit in ("h", "m", "s")
        if short and (gap or not number[0].isdigit()):
            continue  # "5 m", "an h": too ambiguous to be a budget
        if unit.startswith("sec") and number in ("a", "an", "one"):
            continue  # "a second model"
        seconds = _number(number) * _UNITS[unit] * (1.5 if half else 1)
        spans.append((m.start(), m.end(), seconds))
    groups: list[float] = []
    for i, (start, _, seconds) in enumerate(spans):  # adjacent parts add up: "1 hour 30 minutes"
        joined = i and re.fullmatch(r"\s*(?:and\s*)?", text[spans[i - 1][1]:start])
        if joined:
            groups[-1] += seconds
        else:
            groups.append(seconds)
    if len(set(groups)) > 1:
        raise TaskError(f"which time budget: {' or '.join(_seconds(g) for g in groups)}? give one")
    return groups[0] if groups else None


def _number(token: str) -> float:
    return float(token) if token[0].isdigit() else float(_NUMBERS[token.lower()])


def _seconds(s: float) -> str:
    return f"{s / 3600:g} h" if s >= 3600 else f"{s / 60:g} min" if s >= 60 else f"{s:g} s"


def model_aliases() -> dict[str, list[str]]:
    out = {}
    for name, card in model_cards().items():
        title = re.sub(r"\s*\(.*\)", "", card.title.lower())
        out[name] = sorted({name, name.replace("_", " "), title, *card.aliases})
    return out


def metric_aliases() -> dict[str, list[str]]:
    return {m.name: sorted({m.name, m.name.replace("_", " "), *m.aliases}) for m in METRICS.values()}


def _other(names: dict[str, str | None]) -> dict[str, list[str]]:
    return {f"?{n}": [n] for n in names}


def _find(low: str, aliases: dict[str, list[str]], others: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(names whose aliases occur in `low`, in order of mention; names that are not in
    `aliases` — a known other name or a near miss of an alias). Longer aliases first, each
    span used once ("balanced accuracy" is not also "accuracy")."""
    pairs = sorted(((a, n) for n, names in {**aliases, **others}.items() for a in names), key=lambda p: -len(p[0]))
    found: dict[str, int] = {}
    for alias, name in pairs:
        pattern = rf"(?<![\w-]){re.escape(alias)}(?![\w-])"
        if m := re.search(pattern, low):
            low = re.sub(pattern, lambda x: " " * len(x.group(0)), low)
            found[name] = min(found.get(name, m.start()), m.start())
    names = sorted(found, key=found.__getitem__)
    unknown = [n[1:] for n in names if n.startswith("?")]
    vocabulary = [a for names_ in aliases.values() for a in names_ if len(a) >= 4] + [o[0] for o in others.values()]
    for near in _near_misses(low, vocabulary):
        unknown.append(near)
    return [n for n in names if not n.startswith("?")], unknown


def _near_misses(low: str, vocabulary: list[str]) -> list[str]:
    """Words or word pairs of `low` that look like a misspelt name from `vocabulary` ("randm forest")."""
    words = re.findall(r"[a-z][a-z0-9-]{4,}", low)
    parts = _COMMON | {w for v in vocabulary for w in v.split()}  # "forest" is part of a name, not a misspelling
    out: list[str] = []
    for gram in [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)] + words:  # pairs first: "randm forest"
        close = difflib.get_close_matches(gram, [v for v in vocabulary if len(v) >= 5], n=1, cutoff=0.77)
        if close and gram not in parts and not set(gram.split()) <= parts and not any(gram in o for o in out):
            out.append(gram)
    return out


_COMMON = {"model", "models", "modeling", "classification", "classifier", "regressor", "predict", "network", "score",
           "precise", "recalls", "rows", "forests", "boosted", "booster", "scores"}


def unknown_name(kind: str, name: str, others: dict[str, str | None], aliases: dict[str, list[str]]) -> str:
    closest = others.get(name)
    if name not in others:  # a near miss of a name: the card or metric it is closest to
        by_alias = {a: n for n, names in aliases.items() for a in names}
        close = difflib.get_close_matches(name, list(by_alias), n=1, cutoff=0.6)
        closest = by_alias[close[0]] if close else None
    title = f" ({model_cards()[closest].title})" if kind == "model" and closest in model_cards() else ""
    hint = f"did you mean {closest}{title}? " if closest else ""
    choices = ", ".join(n for n in aliases if n not in NOT_COMPARED)
    what = "hyperpilot has no card for it" if kind == "model" else "hyperpilot does not compute it"
    return f"unknown {kind} '{name}' ({what}); {hint}choose one of {choices}"


def _blank(low: str, patterns: list[str]) -> str:
    """`low` with each match of `patterns` (longest first) replaced by spaces."""
    for p in sorted(patterns, key=len, reverse=True):
        low = re.sub(rf"(?<![\w-]){p}(?![\w-])", lambda x: " " * len(x.group(0)), low)
    return low
