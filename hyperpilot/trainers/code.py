"""Code as a hyperparameter: the `custom_code` trainer (contract: `cards/models/custom_code.yaml`).

A *program* is a Python module defining `build(config) -> estimator`. Its life:

1. `check_program(text)` — the first gate, in the coordinating process: size limit, AST
   parse, an import allow-list and a few forbidden builtins, a top-level `build`. A
   rejection is a `CodeRejected` with one clear line (fed back to the LLM). The gate is
   not the security boundary; the sandbox is.
2. The proposer (`agent.code_proposer`) stores it by content hash with the study and the
   trial carries `code_id` and `code`; the objective hands the text to the executor.
3. `ProgramTrainer` — inside the sandbox only: loads `program.py`, calls `build`, and fits
   it with the scikit-learn trainers' preprocessing. Like every trainer it only fits and
   predicts; the coordinator scores. Every fold runs in its own trial process that sees
   only that fold's labels (`sandbox.executor`).
4. `CodeTrainer` — the registered `custom_code` trainer: it refuses to run in the
   coordinating process (a program only ever runs in the sandbox).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hyperpilot.cards.model import get_model_card
from hyperpilot.errors import TrialError
from hyperpilot.task import Task
from hyperpilot.trainers.base import Trainer, register
from hyperpilot.trainers.sklearn import SklearnTrainer

CUSTOM_CODE = "custom_code"
MAX_CODE_BYTES = 20_000
ALLOWED_IMPORTS = frozenset({
    "numpy", "scipy", "pandas", "sklearn", "math", "random", "statistics", "itertools", "functools",
    "collections", "dataclasses", "typing", "warnings", "numbers", "operator", "copy", "enum", "abc", "__future__",
})
FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "__import__", "open", "input", "breakpoint"})
BASELINE_PROGRAM = '''"""hyperpilot's baseline program: histogram gradient boosting driven by the four knobs."""
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor


def build(config):
    regression = config["task_type"] == "regression"
    cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    return cls(
        learning_rate=config["rate"], max_iter=config["size"], max_depth=config["depth"],
        l2_regularization=config["alpha"], random_state=config["seed"],
    )
'''


class CodeRejected(TrialError):
    """A program that fails the static checks; the message says what to change."""


@dataclass(frozen=True)
class Program:
    code_id: str
    code: str


def code_id(code: str) -> str:
    """The content hash that names a program (16 hex digits of SHA-256)."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]


def extract_code(text: str) -> str:
    """The program inside an LLM answer: the first fenced block, else the whole text."""
    m = re.search(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", text, re.S | re.I)
    return (m.group(1) if m else text).strip("\n") + "\n"


def check_program(code: str) -> Program:
    """Static checks before a program may run; raises `CodeRejected` with one clear line."""
    size = len(code.encode("utf-8"))
    if size > MAX_CODE_BYTES:
        raise CodeRejected(f"program rejected: it is {size} bytes; the limit is {MAX_CODE_BYTES}")
    try:
        tree = ast.parse(code, filename="program.py")
    except SyntaxError as e:
        raise CodeRejected(f"program rejected: syntax error at line {e.lineno}: {e.msg}") from None
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise CodeRejected(f"program rejected: relative import at line {node.lineno}; import installed packages only")
            names = [node.module or ""]
        for name in names:
            if name.split(".")[0] not in ALLOWED_IMPORTS:
                raise CodeRejected(
                    f"program rejected: import of '{name}' at line {getattr(node, 'lineno', '?')} is not allowed; "
                    f"allowed: {', '.join(sorted(ALLOWED_IMPORTS - {'__future__'}))}"
                )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            raise CodeRejected(f"program rejected: call to {node.func.id}() at line {node.lineno} is not allowed")
    builds = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build"]
    if not builds:
        raise CodeRejected("program rejected: it must define a top-level function `build(config)` that returns an estimator")
    if not builds[-1].args.args and not builds[-1].args.vararg:
        raise CodeRejected("program rejected: `build` must take one argument, the config dict")
    return Program(code_id(code), code)


# -- inside the sandbox -----------------------------------------------------------------
def load_module(path: Path) -> Any:
    """Import `path` as the module `program` (so tracebacks name program.py and pickles of
    its classes resolve)."""
    spec = importlib.util.spec_from_file_location("program", path)
    if spec is None or spec.loader is None:
        raise TrialError(f"cannot load the program at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["program"] = module
    spec.loader.exec_module(module)
    return module


class _Wrapped(SklearnTrainer):
    """The scikit-learn trainers' preprocessing and CV around a given estimator. It borrows
    the `ridge` card only for the "scale numeric inputs" flag of `SklearnTrainer.pipeline`."""

    def __init__(self, estimator: Any) -> None:
        super().__init__(get_model_card("ridge"))
        self._estimator = estimator

    def estimator(self, config: dict[str, Any], task: Task) -> Any:
        return self._estimator


class ProgramTrainer(SklearnTrainer):
    """Runs a program — only ever inside the sandbox."""

    def __init__(self, module: Any) -> None:
        super().__init__(get_model_card(CUSTOM_CODE))
        self.module = module

    @classmethod
    def from_file(cls, path: Path) -> ProgramTrainer:
        return cls(load_module(path))

    def estimator(self, config: dict[str, Any], task: Task, n_classes: int | None = None) -> Any:
        build = getattr(self.module, "build", None)
        if not callable(build):
            raise TrialError("the program defines no callable build(config)")
        est = build({**config, "task_type": task.task_type, "metric": task.metric, "seed": task.seed, "n_classes": n_classes})
        for method in ("fit", "predict", "get_params"):
            if not callable(getattr(est, method, None)):
                raise TrialError(f"build(config) returned {type(est).__name__}, which has no {method}(); return a scikit-learn estimator")
        return est

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Any:
        n = None if task.task_type == "regression" else int(len(np.unique(y)))
        return _Wrapped(self.estimator(config, task, n)).fit(config, X, y, task)


class CodeTrainer(Trainer):
    """The registered `custom_code` trainer: a program runs only in the sandbox, given to
    the executor with the job (`Job.code`), never through this trainer."""

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Any:
        raise TrialError("custom_code trials run a program in the sandbox; this trainer never runs in-process")


register(CodeTrainer(get_model_card(CUSTOM_CODE)))
