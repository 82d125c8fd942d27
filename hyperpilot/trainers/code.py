"""Code as a hyperparameter: the `custom_code` trainer (contract: `cards/models/custom_code.yaml`).

A *program* is a Python module defining `build(config) -> estimator`. Its life:

1. `check_program(text)` — the first gate, in this process: size limit, AST parse, an
   import allow-list and a few forbidden builtins, a top-level `build`. A rejection is a
   `CodeRejected` with one clear line (fed back to the LLM). The gate is not the security
   boundary; the sandbox is.
2. `save_program(study, text)` — stored as `programs/<code_id>.py` in the study folder,
   keyed by the SHA-256 of its text; trials carry `code_id` and `code` in their
   Optuna user_attrs.
3. `resolve_program(task, config)` — which program a `custom_code` trial runs: the one
   its proposer attached (`code_id` user_attr), else the best program of the study so
   far (BO then tunes that program's knobs), else the built-in baseline. The choice is
   written back to the running trial's user_attrs.
4. `ProgramTrainer` — inside the sandbox only: loads `program.py`, calls `build`, and
   evaluates it with the scikit-learn trainers' preprocessing and cross-validation.
5. `CodeTrainer` — the registered trainer: every step (evaluate, refit, score, predict)
   runs in the sandbox; the refit model is a `SandboxedPipeline` that keeps the pickled
   fitted pipeline as bytes and predicts in the sandbox, so LLM-written code never runs
   in this process. The refit also exports the program as `best_program.py`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from hyperpilot.cards.model import get_model_card
from hyperpilot.errors import HyperpilotError, TrialError
from hyperpilot.task import Task
from hyperpilot.trainers.base import Evaluation, FittedModel, Trainer, register
from hyperpilot.trainers.sklearn import SklearnTrainer, _encode

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


# -- storage ----------------------------------------------------------------------------
def _programs_dir(study_name: str) -> Path:
    from hyperpilot import studies

    folder = studies.study_dir(study_name) / "programs"
    folder.mkdir(exist_ok=True)
    return folder


def save_program(study_name: str, code: str) -> Program:
    """Store `code` under the study, keyed by its hash (idempotent). Does not check it."""
    program = Program(code_id(code), code)
    path = _programs_dir(study_name) / f"{program.code_id}.py"
    if not path.exists():
        path.write_text(code, encoding="utf-8")
    return program


def load_program(study_name: str, cid: str) -> Program | None:
    if not re.fullmatch(r"[0-9a-f]{16}", cid):
        return None
    path = _programs_dir(study_name) / f"{cid}.py"
    return Program(cid, path.read_text(encoding="utf-8")) if path.exists() else None


def resolve_program(task: Task, config: dict[str, Any]) -> Program:
    """The program a `custom_code` trial of `task`'s study runs (see the module docstring)."""
    from hyperpilot import studies

    if not task.study_name:
        return Program(code_id(BASELINE_PROGRAM), BASELINE_PROGRAM)
    try:
        study = studies.load_study(task.study_name)
    except HyperpilotError:
        return save_program(task.study_name, BASELINE_PROGRAM)
    ours = [t for t in study.get_trials(deepcopy=False) if t.params.get("model") == CUSTOM_CODE]
    running = _running(ours, config)
    if running is not None:
        trial = running
        program = _stored(task.study_name, trial.user_attrs) or _best(task.study_name, ours, study.direction.name)
        store = study._storage  # noqa: SLF001 - a running trial's attrs; Optuna has no public handle here
        store.set_trial_user_attr(trial._trial_id, "code_id", program.code_id)  # noqa: SLF001
        store.set_trial_user_attr(trial._trial_id, "code", program.code)  # noqa: SLF001
        return program
    same = [t for t in ours if _matches(t.params, config)]
    return _best(task.study_name, same, study.direction.name) if same and _best_of(same, study.direction.name) \
        else _best(task.study_name, ours, study.direction.name)


def _running(trials: list[Any], config: dict[str, Any]) -> Any | None:
    running = [t for t in trials if t.state == TrialState.RUNNING and _matches(t.params, config)]
    return running[-1] if running else None


def annotate_trial(task: Task, config: dict[str, Any], **attrs: Any) -> None:
    """Set user_attrs on the running `custom_code` trial of `config` (if there is one)."""
    from hyperpilot import studies

    try:
        study = studies.load_study(str(task.study_name))
    except HyperpilotError:
        return
    trial = _running([t for t in study.get_trials(deepcopy=False) if t.params.get("model") == CUSTOM_CODE], config)
    if trial is None:
        return
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)  # noqa: SLF001 - see resolve_program


def _matches(params: dict[str, Any], config: dict[str, Any]) -> bool:
    for k, v in config.items():
        p = params.get(f"{CUSTOM_CODE}.{k}")
        if isinstance(v, (int, float)) and isinstance(p, (int, float)):
            if not math.isclose(float(p), float(v), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif p != v:
            return False
    return True


def _stored(study_name: str, attrs: dict[str, Any]) -> Program | None:
    cid = attrs.get("code_id")
    if not isinstance(cid, str):
        return None
    program = load_program(study_name, cid)
    if program is None and isinstance(attrs.get("code"), str) and code_id(attrs["code"]) == cid:
        program = save_program(study_name, attrs["code"])
    return program


def _best_of(trials: list[Any], direction: str) -> Any | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("code_id") and t.value is not None]
    if not done:
        return None
    return (max if direction == "MAXIMIZE" else min)(done, key=lambda t: t.value)


def _best(study_name: str, trials: list[Any], direction: str) -> Program:
    """The program of the best completed trial, else the latest attached one that has not
    failed, else the baseline."""
    best = _best_of(trials, direction)
    if best is not None and (program := _stored(study_name, best.user_attrs)):
        return program
    for t in reversed(trials):
        if t.state != TrialState.FAIL and (program := _stored(study_name, t.user_attrs)):
            return program
    return save_program(study_name, BASELINE_PROGRAM)


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

    def pipeline(self, config: dict[str, Any], X: pd.DataFrame, task: Task, n_classes: int | None = None) -> Any:
        return _Wrapped(self.estimator(config, task, n_classes)).pipeline(config, X, task)

    def evaluate(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Evaluation:
        n = None if task.task_type == "regression" else int(pd.Series(y).nunique())
        return _Wrapped(self.estimator(config, task, n)).evaluate(config, X, y, task)

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> FittedModel:
        n = None if task.task_type == "regression" else int(pd.Series(y).nunique())
        return _Wrapped(self.estimator(config, task, n)).fit(config, X, y, task)


def _load_xy(run_dir: Path) -> tuple[Any, Any]:
    with open(run_dir / "data.pkl", "rb") as f:
        return pickle.load(f)  # noqa: S301 - written by the parent


def fit_job(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    X, y = _load_xy(run_dir)
    fitted = ProgramTrainer.from_file(run_dir / "program.py").fit(payload["config"], X, y, Task.model_validate(payload["task"]))
    with open(run_dir / "model.pkl", "wb") as f:
        pickle.dump(fitted.pipeline, f, protocol=pickle.HIGHEST_PROTOCOL)
    return {"features": fitted.features}


def predict_job(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    load_module(run_dir / "program.py")
    with open(run_dir / "model.pkl", "rb") as f:
        pipeline = pickle.load(f)  # noqa: S301 - made by this program in an earlier sandboxed run
    X, _ = _load_xy(run_dir)
    out = pipeline.predict_proba(X) if payload.get("proba") else pipeline.predict(X)
    np.save(run_dir / "out.npy", np.asarray(out, dtype=float if payload.get("proba") else None), allow_pickle=False)
    return {}


def score_job(run_dir: Path, payload: dict[str, Any]) -> float:
    load_module(run_dir / "program.py")
    with open(run_dir / "model.pkl", "rb") as f:
        pipeline = pickle.load(f)  # noqa: S301 - made by this program in an earlier sandboxed run
    X, y = _load_xy(run_dir)
    model = FittedModel(pipeline, payload["classes"], payload["features"])
    return _Wrapped(None).score(model, X, y, Task.model_validate(payload["task"]))


# -- in this process: the registered trainer ---------------------------------------------
_EXECUTOR: Any = None


def default_executor() -> Any:
    """The `SandboxExecutor` that `CodeTrainer` uses (made on first use)."""
    global _EXECUTOR
    if _EXECUTOR is None:
        from hyperpilot.sandbox import SandboxExecutor

        _EXECUTOR = SandboxExecutor()
    return _EXECUTOR


def _run(target: str, payload: dict[str, Any], files: dict[str, str | bytes], collect: tuple[str, ...] = ()) -> Any:
    res = default_executor().sandbox.run(target, payload, files=files, focus="program.py", collect=collect)
    if not res.ok:
        raise TrialError(f"{res.error}\n{res.traceback}".strip())
    return res


class SandboxedPipeline:
    """A program's fitted pipeline, kept as pickled bytes and only ever unpickled inside
    the sandbox: `predict` and `predict_proba` run there."""

    def __init__(self, code: str, model: bytes) -> None:
        self.code = code
        self.model = model

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._run(X, proba=False)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._run(X, proba=True)

    def _run(self, X: pd.DataFrame, proba: bool) -> np.ndarray:
        import io

        files: dict[str, str | bytes] = {"program.py": self.code, "model.pkl": self.model, "data.pkl": pickle.dumps((X, None))}
        res = _run("hyperpilot.trainers.code:predict_job", {"proba": proba}, files, ("out.npy",))
        return np.load(io.BytesIO(res.files["out.npy"]), allow_pickle=False)


class CodeTrainer(Trainer):
    """The `custom_code` trainer. Nothing of a program runs in this process."""

    def evaluate(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> Evaluation:
        outcome = default_executor().run(CUSTOM_CODE, config, X, y, task)
        if outcome.evaluation is None:
            raise TrialError(outcome.error)
        return outcome.evaluation

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: pd.Series, task: Task) -> FittedModel:
        program = resolve_program(task, config)
        if task.study_name:
            from hyperpilot import studies

            (studies.study_dir(task.study_name) / "best_program.py").write_text(program.code, encoding="utf-8")
        payload = {"config": config, "task": task.model_dump(mode="json")}
        files: dict[str, str | bytes] = {"program.py": program.code, "data.pkl": pickle.dumps((X, y))}
        res = _run("hyperpilot.trainers.code:fit_job", payload, files, ("model.pkl",))
        _, classes = _encode(y, task)
        return FittedModel(SandboxedPipeline(program.code, res.files["model.pkl"]), classes, list(res.value["features"]))

    def score(self, model: FittedModel, X: pd.DataFrame, y: pd.Series, task: Task) -> float:
        pipe = model.pipeline
        if not isinstance(pipe, SandboxedPipeline):
            raise TrialError("custom_code models are scored in the sandbox; this one was not made by CodeTrainer.fit")
        payload = {"classes": model.classes, "features": model.features, "task": task.model_dump(mode="json")}
        files: dict[str, str | bytes] = {"program.py": pipe.code, "model.pkl": pipe.model, "data.pkl": pickle.dumps((X, y))}
        return float(_run("hyperpilot.trainers.code:score_job", payload, files).value)


register(CodeTrainer(get_model_card(CUSTOM_CODE)))
