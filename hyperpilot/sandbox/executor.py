"""`SandboxExecutor`: the `Executor` that runs every trial in a `Sandbox`.

Lifecycle: constructing it stores its arguments (no I/O, no process). The first `run`
starts the sandbox worker (it imports pandas, scikit-learn and the trainers once). Each
`run(model, config, X, y, task)`:

1. writes (X, y) once per dataset as a pickle into the sandbox's read-only data folder;
2. for the `custom_code` model, resolves the trial's program in this process
   (`trainers.code.resolve_program`) and puts it in the run dir as `program.py`; a
   trainer registered here but not importable in the sandbox goes as `trainer.pkl`;
3. runs `evaluate_job` in a fresh trial process — it loads the data, builds the trainer
   and cross-validates — with the executor's limits and the per-trial timeout;
4. turns the `SandboxResult` into an `Outcome`: the `Evaluation`, or a failed trial whose
   error is one reason line ("timed out after 30 s", "network access is blocked …",
   "ValueError: … (at evaluate:12)"); a failed `custom_code` trial also gets the
   summarised traceback in its `traceback` user_attr. It never raises for what a trial does.

`close()` kills the worker (it also dies with this process).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import secrets
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import pandas as pd

from hyperpilot.sandbox import layers
from hyperpilot.sandbox.limits import Limits
from hyperpilot.sandbox.result import SandboxResult
from hyperpilot.sandbox.runner import Sandbox, shared_sandbox, unshare_file
from hyperpilot.task import Task
from hyperpilot.tools.train import Outcome
from hyperpilot.trainers.base import Evaluation

MAX_ERROR_CHARS = 500
PROGRAM_FILE = "program.py"
TRAINER_FILE = "trainer.pkl"


def outcome_error(res: SandboxResult) -> str:
    """One line: the reason, in `tools.train.run_trial`'s form when the job raised
    ("ValueError: ... (at evaluate:12)"), so errors read the same under every executor."""
    text = f"{res.error} (at {res.where})" if res.kind == "error" and res.where else res.error
    return " ".join(text.split())[:MAX_ERROR_CHARS]


def trainer_module(model: str) -> str | None:
    """The module that registers `model`'s trainer (imported in the trial before lookup)."""
    from hyperpilot.trainers import trainers

    trainer = trainers().get(model)
    return type(trainer).__module__ if trainer is not None else None


def trainer_bytes(model: str) -> bytes | None:
    """A trainer registered in this process but not importable in the sandbox (defined in
    a script, a notebook or a test) travels by value (cloudpickle); hyperpilot's own and
    installed trainers are imported there by name (None)."""
    from hyperpilot.trainers import trainers

    trainer = trainers().get(model)
    module = sys.modules.get(type(trainer).__module__) if trainer is not None else None
    if trainer is None or module is None or type(trainer).__module__.startswith("hyperpilot."):
        return None
    import cloudpickle

    path = os.path.realpath(getattr(module, "__file__", "") or "")
    visible = bool(path) and any(path.startswith(p + os.sep) for p in layers.python_binds())
    by_value = not visible and module.__name__ != "__main__"
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(trainer))
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


class SandboxExecutor:
    """Runs each trial in its own sandboxed process (see `hyperpilot.sandbox`).

    `limits` caps every trial (default: `Limits()` with the machine's GPUs, if any);
    `trial_timeout` overrides its wall-clock limit (a `Task.trial_timeout`, where the task
    has one, wins); `layer` forces "bwrap", "unshare" or "plain". Without `sandbox`, the
    process-wide `shared_sandbox(limits, layer)` is used, so every executor of a process
    shares one warm worker (trials of concurrent solves then run one at a time); pass
    your own `Sandbox` to own the worker (`close()` then stops it)."""

    def __init__(self, limits: Limits | None = None, *, trial_timeout: float | None = None,
                 layer: str | None = None, sandbox: Sandbox | None = None) -> None:
        self.limits = limits
        self.trial_timeout = trial_timeout
        self.layer = layer
        self._sandbox = sandbox
        self._owns = sandbox is not None
        self._data: tuple[Any, Any, str] | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = shared_sandbox(self.limits, self.layer)
        return self._sandbox

    def timeout_for(self, task: Task) -> float | None:
        return getattr(task, "trial_timeout", None) or self.trial_timeout

    def run(self, model: str, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Outcome:
        start = time.perf_counter()
        try:
            payload: dict[str, Any] = {"model": model, "config": config, "task": task.model_dump(mode="json"),
                                       "data": self.data_path(X, y)}
            files: dict[str, str | bytes] = {}
            from hyperpilot.trainers.code import CUSTOM_CODE, annotate_trial, resolve_program

            if model == CUSTOM_CODE:
                program = resolve_program(task, config)
                files[PROGRAM_FILE] = program.code
                payload["program"] = PROGRAM_FILE
                payload["code_id"] = program.code_id
            elif (blob := trainer_bytes(model)) is not None:
                files[TRAINER_FILE] = blob
                payload["trainer"] = TRAINER_FILE
            else:
                payload["trainer_module"] = trainer_module(model)
            res = self.sandbox.run("hyperpilot.sandbox.executor:evaluate_job", payload, files=files,
                                   timeout=self.timeout_for(task), focus=PROGRAM_FILE)
        except Exception as e:  # noqa: BLE001 - a trial never raises (SandboxError, an unpicklable trainer, ...)
            return Outcome(None, time.perf_counter() - start, " ".join(f"{type(e).__name__}: {e}".split())[:MAX_ERROR_CHARS])
        seconds = time.perf_counter() - start
        if not res.ok:
            if model == CUSTOM_CODE and res.traceback:  # the repair loop feeds it back to the code writer
                annotate_trial(task, config, traceback=res.traceback)
            return Outcome(None, seconds, outcome_error(res))
        try:
            return Outcome(Evaluation(**res.value), seconds)
        except TypeError as e:
            return Outcome(None, seconds, f"the trial returned a malformed evaluation: {e}")

    def data_path(self, X: pd.DataFrame, y: pd.Series) -> str:
        """The pickle of (X, y) the trials read; written once per dataset."""
        if self._data is not None and self._data[0] is X and self._data[1] is y:
            return self._data[2]
        key = f"data-{secrets.token_hex(6)}"

        def write(path: Path) -> None:
            with open(path, "wb") as f:
                pickle.dump((X, y), f, protocol=pickle.HIGHEST_PROTOCOL)

        self._forget_data()
        path = str(self.sandbox.share(key, write))
        self._data = (X, y, path)
        weakref.finalize(self, unshare_file, self.sandbox, path)
        return path

    def _forget_data(self) -> None:
        if self._data is not None and self._sandbox is not None:
            unshare_file(self._sandbox, self._data[2])
        self._data = None

    def close(self) -> None:
        """Delete this executor's data file; stop the worker if this executor owns it."""
        self._forget_data()
        if self._sandbox is not None and self._owns:
            self._sandbox.close()


def warmup() -> None:
    """Run once in the worker, before it forks trials: fills what scikit-learn and pandas
    load lazily on first use (narwhals, pyarrow's pandas bridge, scorers, the trainers'
    pipelines), so no trial pays for it. Uses no OpenMP model: GNU OpenMP is not fork-safe
    once its thread pool has started."""
    import numpy as np

    from hyperpilot.cards import get_model_card
    from hyperpilot.trainers import get_trainer

    X = pd.DataFrame({"a": np.arange(40, dtype=float), "b": ["x", "y", "z", "w"] * 10})
    y = pd.Series([0, 1] * 20)
    task = Task.model_validate({"data": "warmup", "metric": "roc_auc", "cv_folds": 2}).resolved("binary")
    for model in ("logistic_regression", "decision_tree"):
        get_trainer(model).evaluate(get_model_card(model).default_config(), X, y, task)


def evaluate_job(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """In the trial process: load the data, cross-validate the config, return the evaluation."""
    with open(payload["data"], "rb") as f:
        X, y = pickle.load(f)  # noqa: S301 - written by the parent, read-only here
    task = Task.model_validate(payload["task"])
    if payload.get("program"):
        from hyperpilot.trainers.code import ProgramTrainer

        trainer: Any = ProgramTrainer.from_file(run_dir / payload["program"])
    elif payload.get("trainer"):
        with open(run_dir / payload["trainer"], "rb") as f:
            trainer = pickle.load(f)  # noqa: S301 - sent by the parent
    else:
        import importlib

        from hyperpilot.trainers import get_trainer

        if payload.get("trainer_module"):
            importlib.import_module(payload["trainer_module"])  # registers trainers not in hyperpilot.trainers
        trainer = get_trainer(payload["model"])
    return dataclasses.asdict(trainer.evaluate(payload["config"], X, y, task))
