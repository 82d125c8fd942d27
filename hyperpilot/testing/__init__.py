"""Contract suites, one per extension point, shipped so a user can check their own
implementation with one call (like scikit-learn's `check_estimator`):

    check_trainer(trainer)          a `trainers.Trainer`
    check_executor(executor)        a `core.executor.Executor`
    check_proposer(make_proposer)   a `core.proposer.Proposer` (a factory: one fresh proposer per run)
    check_sampler(make_sampler)     an Optuna sampler factory `(seed) -> BaseSampler`, or a registered name
    check_sandbox_layer(layer)      a sandbox layer name (bwrap, unshare, plain)
    check_llm(llm)                  an `agent.llm.LLM` backend

Each runs the real thing on a tiny problem and raises `ContractError` with one line that
says what broke. hyperpilot's tests run every suite over every registered implementation
(tests/test_contracts.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pandas as pd

from hyperpilot.agent.llm.base import LLM, Completion
from hyperpilot.cards import get_model_card
from hyperpilot.core.cv import CrossValidation, encode
from hyperpilot.core.executor import Executor, Response
from hyperpilot.core.loop import Objective, StudyLoop, TrialHandle
from hyperpilot.core.proposer import CardDefaults, Proposer, StudyContext
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Outcome, Suggestion
from hyperpilot.errors import HyperpilotError, LLMError
from hyperpilot.samplers import make_sampler
from hyperpilot.task import Task
from hyperpilot.trainers import Trainer

__all__ = ["ContractError", "check_executor", "check_llm", "check_proposer", "check_sampler", "check_sandbox_layer",
           "check_trainer", "tiny_data"]


class ContractError(AssertionError):
    """An implementation broke its extension point's contract."""


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ContractError(what)


def tiny_data(task_type: str = "binary", n: int = 90, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, Task]:
    """A small table with a numeric, a categorical and a missing value, and its resolved task."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], size=n)})
    X.loc[3, "a"] = np.nan
    signal = X["a"].fillna(0) + 0.5 * X["b"] + (X["c"] == "x")
    if task_type == "regression":
        y = pd.Series(signal + rng.normal(scale=0.1, size=n))
    elif task_type == "multiclass":
        y = pd.Series(np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])).astype(int))
    else:
        y = pd.Series((signal > np.median(signal)).astype(int)).map({0: "no", 1: "yes"})
    metric = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task_type]
    task = Task(data="tiny", metric=metric, cv_folds=3, n_trials=6).resolved(task_type)  # type: ignore[arg-type]
    return X, y, task


# -- trainer ----------------------------------------------------------------------------------
def check_trainer(trainer: Trainer, n_configs: int = 3,
                  data: Callable[[str], tuple[pd.DataFrame, pd.Series, Task]] = tiny_data) -> None:
    """`fit` on every task type of the card, with the default and sampled configs: returns
    an estimator whose predictions have the right shape and range; the config is not mutated;
    the same config fits to the same predictions. `data(task_type)` gives (X, y, resolved
    task), for models that need other features than `tiny_data`'s (images, text)."""
    card = trainer.card
    _require(bool(card.task_types), f"card {card.name} names no task type")
    rng = np.random.default_rng(0)
    for task_type in card.task_types:
        X, y, task = data(task_type)
        codes, classes = encode(y, task)
        configs = [card.default_config()] + [card.space.sample(rng) for _ in range(n_configs - 1)]
        for config in configs:
            before = json.dumps(config, sort_keys=True, default=str)
            fitted = trainer.fit(config, X, codes, task)
            _require(json.dumps(config, sort_keys=True, default=str) == before, f"{card.name}.fit mutated its config")
            pred = np.asarray(fitted.predict(X))
            _require(pred.shape == (len(X),), f"{card.name}: predict gave shape {pred.shape} for {len(X)} rows")
            if classes is not None:
                _require(set(np.unique(pred)) <= set(range(len(classes))), f"{card.name}: predict must return class codes")
                if callable(getattr(fitted, "predict_proba", None)):
                    proba = np.asarray(fitted.predict_proba(X))
                    _require(proba.shape == (len(X), len(classes)) and np.allclose(proba.sum(axis=1), 1, atol=1e-6),
                             f"{card.name}: predict_proba must give one column per class, rows summing to 1")
            else:
                _require(bool(np.all(np.isfinite(pred.astype(float)))), f"{card.name}: regression predictions must be finite")
            again = np.asarray(trainer.fit(config, X, codes, task).predict(X))
            _require(bool(np.array_equal(pred, again)), f"{card.name}: the same config fit twice predicts differently (seed it)")


# -- executor ---------------------------------------------------------------------------------
def check_executor(executor: Executor) -> None:
    """Reports each fold once, in order, with one prediction per validation row; obeys a
    stop; turns a failing trainer into an error result (never raises); a refit keeps a
    model that predicts; `workers` is a positive int."""
    _require(isinstance(executor.workers, int) and executor.workers >= 1, "executor.workers must be an int >= 1")
    X, y, task = tiny_data("binary")
    cv = CrossValidation(executor, X, y, task)
    config = get_model_card("knn").default_config()
    seen: list[tuple[int, Response]] = []
    def record(step: int, response: Response) -> bool:
        seen.append((step, response))
        return False

    res = executor.run(cv.job("knn", config, seed=1), record)
    _require(res.ok, f"a valid job failed: {res.error}")
    _require([s for s, _ in seen] == list(range(len(cv.folds))), f"folds reported as {[s for s, _ in seen]}")
    for (step, response), (_, val) in zip(seen, cv.folds, strict=True):
        arr = next(iter(response.values()))
        _require(len(arr) == len(val), f"fold {step}: {len(arr)} predictions for {len(val)} rows")
    steps: list[int] = []

    def stop(step: int, response: Response) -> bool:
        steps.append(step)
        return True

    res = executor.run(cv.job("knn", config, seed=1), stop)
    _require(res.stopped and not res.ok and steps == [0], f"a stop after fold 0 was not obeyed (reports {steps}, stopped={res.stopped})")
    res = executor.run(cv.job("knn", {**config, "n_neighbors": 10_000}, seed=1), lambda s, r: False)
    _require(not res.ok and bool(res.error), "a job whose trainer raises must come back as an error, with a reason")
    model, score = cv.refit("knn", config, X.iloc[:20], y.iloc[:20], seed=1)
    _require(score is not None and 0.0 <= score <= 1.0 and len(np.asarray(model.predict(X.iloc[:5]))) == 5,
             "a refit must keep a model that predicts")
    model, score = cv.refit("knn", config, None, None, seed=1)  # nothing held out (Task.test_size=0): fit only
    _require(score is None and len(np.asarray(model.predict(X.iloc[:5]))) == 5, "a refit with nothing held out must keep a model")


# -- proposer ---------------------------------------------------------------------------------
def _quadratic(handle: TrialHandle) -> Outcome:
    values = [float(v) for v in handle.config.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return Outcome(-sum(math.log1p(abs(v)) for v in values), 0.0)


def _loop(proposers: list[Proposer], sampler: optuna.samplers.BaseSampler, n: int, workers: int = 1,
          objective: Objective = _quadratic) -> StudyContext:
    task = Task(data="tiny", metric="accuracy", models=["knn", "decision_tree"], n_trials=n, study_name="contract").resolved("binary")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    ctx = StudyContext(task, study, StudySpace([get_model_card("knn"), get_model_card("decision_tree")]))
    StudyLoop(ctx, objective, [CardDefaults(), *proposers], workers=workers).run(n)
    return ctx


def check_proposer(make: Callable[[], Proposer], n_trials: int = 10) -> None:
    """Its hooks return the documented types, its suggestions are valid in the space, it
    never raises out of the loop (also when every trial fails), and the study gets its budget."""
    proposer = make()
    calls: list[str] = []

    class Spy(Proposer):
        def start(self, ctx: StudyContext) -> list[Suggestion]:
            out = proposer.start(ctx)
            _require(isinstance(out, list) and all(isinstance(s, Suggestion) for s in out), "start() must return a list of Suggestions")
            calls.append("start")
            return out

        def suggest(self, ctx: StudyContext) -> Suggestion | None:
            s = proposer.suggest(ctx)
            _require(s is None or isinstance(s, Suggestion), f"suggest() returned {type(s).__name__}")
            if s is not None:
                ctx.space.to_params(s.model, s.config)  # raises SpaceError for an invalid one
            return s

        def observe(self, ctx: StudyContext, record: Any) -> None:
            proposer.observe(ctx, record)
            calls.append("observe")

        def finish(self, ctx: StudyContext) -> None:
            proposer.finish(ctx)
            calls.append("finish")

    ctx = _loop([Spy()], optuna.samplers.RandomSampler(seed=0), n_trials)
    _require(len(ctx.study.trials) == n_trials, f"the study ran {len(ctx.study.trials)} of {n_trials} trials")
    _require(calls[0] == "start" and calls[-1] == "finish" and calls.count("observe") == n_trials, "hooks out of order")
    proposer = make()
    failing = _loop([Spy()], optuna.samplers.RandomSampler(seed=0), 4, objective=lambda h: Outcome(None, 0.0, "boom"))
    _require(len(failing.study.trials) == 4, "with failing trials the study must still get its budget")


# -- sampler ----------------------------------------------------------------------------------
def check_sampler(make: Callable[[int], optuna.samplers.BaseSampler] | str, n_trials: int = 12) -> None:
    """Drives the loop to its budget with one and two workers, and is reproducible: the
    same seed gives the same configs."""
    factory = (lambda seed: make_sampler(make, seed, n_trials)) if isinstance(make, str) else make
    first = [t.params for t in _loop([], factory(3), n_trials).study.trials]
    again = [t.params for t in _loop([], factory(3), n_trials).study.trials]
    _require(len(first) == n_trials, f"the study ran {len(first)} of {n_trials} trials")
    _require(first == again, "the same seed gave different configs")
    parallel = _loop([], factory(3), n_trials, workers=2).study
    _require(len(parallel.trials) == n_trials, "with two workers the study did not get its budget")


# -- sandbox layer ----------------------------------------------------------------------------
PROBE = '''
import os, socket
out = {"pid": os.getpid()}
open("made.txt", "w").write("ok")
try:
    socket.create_connection(("127.0.0.1", 9), timeout=1); out["net"] = "open"
except OSError:
    out["net"] = "blocked"
RESULT = out
'''


def check_sandbox_layer(layer: str, isolating: bool | None = None) -> None:
    """A job runs and returns its value, may write its run dir, fails with a reason when it
    raises, is killed at its timeout; an isolating layer (bwrap, unshare) blocks the network."""
    from hyperpilot.sandbox import Limits, Sandbox

    isolating = layer in ("bwrap", "unshare") if isolating is None else isolating
    with Sandbox(Limits(wall_seconds=20), layer, preload=(), cgroup=False) as box:
        res = box.run("hyperpilot.sandbox.job:exec_file", {"file": "probe.py"}, files={"probe.py": PROBE})
        _require(res.ok and isinstance(res.value, dict), f"{layer}: a simple job failed: {res.error}")
        _require(res.layer == layer, f"asked for layer {layer}, ran under {res.layer}")
        if isolating:
            _require(res.value.get("net") == "blocked", f"{layer}: the network is reachable from a job")
        res = box.run("hyperpilot.sandbox.job:exec_file", {"file": "bad.py"}, files={"bad.py": "raise ValueError('nope')"})
        _require(not res.ok and "nope" in res.error, f"{layer}: a raising job must fail with its reason, got {res.error!r}")
        res = box.run("hyperpilot.sandbox.job:exec_file", {"file": "slow.py"}, files={"slow.py": "import time\ntime.sleep(60)"},
                      timeout=1.0)
        _require(not res.ok and res.kind == "timeout" and res.seconds < 15, f"{layer}: a job past its timeout was not killed in time")


# -- LLM backend ------------------------------------------------------------------------------
def check_llm(llm: LLM) -> None:
    """`chat` answers with a `Completion` (text; JSON when a schema is given and the backend
    constrains output), `text` returns a string, and bad calls raise `LLMError`."""
    _require(isinstance(llm.backend, str) and bool(llm.backend), "an LLM must name its backend")
    schema = {"type": "object", "properties": {"pick": {"type": "string", "enum": ["a", "b"]}}, "required": ["pick"]}
    answer = llm.chat([{"role": "user", "content": "Pick a or b. Answer in JSON."}], schema=schema, max_tokens=32, timeout=60)
    _require(isinstance(answer, Completion) and isinstance(answer.text, str), "chat() must return a Completion with text")
    if llm.backend in ("embedded", "scripted"):  # grammar-constrained backends
        _require(json.loads(answer.text).get("pick") in ("a", "b"), f"a schema answer must fit the schema: {answer.text!r}")
    _require(isinstance(llm.text("Say hello.", max_tokens=16, timeout=60), str), "text() must return a string")
    for bad in (lambda: llm.chat([], timeout=5), lambda: llm.chat([{"role": "user", "content": "x"}], timeout=0)):
        try:
            bad()
        except LLMError:
            continue
        except HyperpilotError as e:  # pragma: no cover - a wrong error type
            raise ContractError(f"bad calls must raise LLMError, got {type(e).__name__}") from e
        raise ContractError("a bad call (no messages, timeout 0) must raise LLMError")
