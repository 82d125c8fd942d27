"""Code as a hyperparameter: static checks, storage by hash, the CodeProposer's repair
loop and safe fallback, BO tuning a program's knobs, refit/predict in the sandbox and the
exported best program. The code writer is scripted (no LLM)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

import joblib
import pytest

from hyperpilot import studies
from hyperpilot.agent import Assistant
from hyperpilot.agent.code_proposer import CodeProposer
from hyperpilot.data import load_dataset
from hyperpilot.sandbox import Limits, SandboxExecutor
from hyperpilot.task import Task
from hyperpilot.trainers import code as code_module
from hyperpilot.trainers.code import (
    BASELINE_PROGRAM,
    CUSTOM_CODE,
    MAX_CODE_BYTES,
    CodeRejected,
    SandboxedPipeline,
    check_program,
    code_id,
    extract_code,
    load_program,
    save_program,
)

TEST_LIMITS = Limits(wall_seconds=120, memory_mb=3072, max_processes=32)  # same as test_sandbox_hostile.py
BROKEN = """from sklearn.linear_model import LogisticRegression


def build(config):
    return LogisticRegresion(C=1.0 / config["alpha"], max_iter=300)
"""
FIXED = BROKEN.replace("LogisticRegresion(", "LogisticRegression(")
IMPROVED = """from sklearn.neighbors import KNeighborsClassifier


def build(config):
    return KNeighborsClassifier(n_neighbors=max(1, min(25, config["size"] // 10)))
"""


@pytest.fixture(scope="module")
def executor() -> Iterator[SandboxExecutor]:
    """The process-wide sandbox for these limits (test_sandbox_hostile.py shares its warm
    worker), started with one OpenMP thread (HistGradientBoosting spin-waits badly on a
    shared 2-core machine); CodeTrainer's refit and predictions use it too."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    ex = SandboxExecutor(TEST_LIMITS, trial_timeout=120)
    saved, code_module._EXECUTOR = code_module._EXECUTOR, ex  # noqa: SLF001
    yield ex
    code_module._EXECUTOR = saved  # noqa: SLF001
    ex.close()
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before


def _assistant(executor: SandboxExecutor, **kw: Any) -> Assistant:
    params = inspect.signature(Assistant).parameters
    extra = {k: v for k, v in (("llm", "none"), ("memory", False)) if k in params}
    return Assistant(executor=executor, **kw, **extra)


def test_check_program_accepts_the_contract_and_the_baseline() -> None:
    assert check_program(FIXED).code_id == code_id(FIXED)
    check_program(BASELINE_PROGRAM)


@pytest.mark.parametrize("code, message", [
    ("import os\ndef build(config):\n    return os", "import of 'os' at line 1 is not allowed; allowed: abc"),
    ("from subprocess import run\ndef build(c):\n    pass", "import of 'subprocess'"),
    ("from . import x\ndef build(c):\n    pass", "relative import"),
    ("def build(config):\n    return eval('1')", "call to eval() at line 2"),
    ("def build(config)\n    return 1", "syntax error at line 1"),
    ("def make(config):\n    return 1", "must define a top-level function `build(config)`"),
    ("def build():\n    return 1", "must take one argument"),
    ("x = 1\n" * (MAX_CODE_BYTES // 6 + 10) + "def build(c):\n    pass", f"the limit is {MAX_CODE_BYTES}"),
])
def test_check_program_rejects_with_one_clear_line(code: str, message: str) -> None:
    with pytest.raises(CodeRejected, match="program rejected") as e:
        check_program(code)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_extract_code_takes_the_fenced_block() -> None:
    answer = "Sure! Here it is:\n```python\n" + FIXED + "```\nIt uses logistic regression."
    assert extract_code(answer) == FIXED
    assert extract_code(FIXED) == FIXED


def test_programs_are_stored_by_content_hash() -> None:
    program = save_program("s1", FIXED)
    assert (studies.study_dir("s1") / "programs" / f"{program.code_id}.py").read_text() == FIXED
    assert save_program("s1", FIXED) == program
    assert load_program("s1", program.code_id) == program
    assert load_program("s1", "../../etc/passwd") is None


class Writer:
    """A scripted code writer: broken first, fixed after the failure, then an improvement."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if prompt.startswith("Your program failed"):
            return "Fixed:\n```python\n" + FIXED + "```"
        if prompt.startswith("Your program scored"):
            return "```python\n" + IMPROVED + "```"
        return "```python\n" + BROKEN + "```"


def test_code_proposer_repairs_improves_and_exports_the_best_program(executor: SandboxExecutor) -> None:
    writer = Writer()
    proposer = CodeProposer(writer, max_programs=2, max_repairs=1)
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], cv_folds=2, n_trials=5, seed=3)
    result = _assistant(executor, proposers=[proposer]).solve(task)

    trials = studies.load_study(result.study_name).trials
    code_trials = [t for t in trials if t.user_attrs.get("source") == "code"]
    assert [t.user_attrs["code"] for t in code_trials] == [BROKEN, FIXED, IMPROVED]
    assert [t.state.name for t in code_trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    failure, traceback = code_trials[0].user_attrs["error"], code_trials[0].user_attrs["traceback"]
    assert failure == "NameError: name 'LogisticRegresion' is not defined (at build:5)"
    assert "program.py, line 5, in build" in traceback and "return LogisticRegresion(" in traceback
    assert failure in writer.prompts[1] and traceback in writer.prompts[1] and BROKEN.strip() in writer.prompts[1]
    assert "Task: multiclass, metric accuracy" in writer.prompts[0] and "Dataset:" in writer.prompts[0]
    assert proposer.stats["queued"] == 3 and proposer.stats["failed"] == 1 and proposer.stats["succeeded"] == 2

    folder = studies.study_dir(result.study_name)
    for t in trials:  # every custom_code trial, BO's included, records which program it ran
        assert (folder / "programs" / f"{t.user_attrs['code_id']}.py").exists(), t.user_attrs
    assert result.best_model == CUSTOM_CODE
    best_code = max((t for t in trials if t.value is not None), key=lambda t: t.value).user_attrs["code"]
    assert (folder / "best_program.py").read_text() == best_code
    assert "## Best program" in result.report_path.read_text()

    fitted = joblib.load(result.model_path)  # refit in the sandbox; predictions in the sandbox too
    assert isinstance(fitted.pipeline, SandboxedPipeline)
    d = load_dataset("sklearn:iris")
    pred = fitted.predict(d.X.head(10))
    assert set(pred) <= set(d.y) and len(pred) == 10
    assert 0.0 <= result.test_score <= 1.0


@pytest.mark.parametrize("answer", ["I would use a random forest with 100 trees.", RuntimeError("endpoint down")])
def test_a_writer_that_cannot_code_falls_back_to_bo(answer: object, executor: SandboxExecutor) -> None:
    def write(prompt: str) -> str:
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    proposer = CodeProposer(write, max_programs=2, max_repairs=1)
    task = Task(data="sklearn:iris", models=["decision_tree", CUSTOM_CODE], cv_folds=2, n_trials=3, seed=0)
    result = _assistant(executor, proposers=[proposer]).solve(task)
    assert result.n_trials == 3
    assert not [t for t in studies.load_study(result.study_name).trials if t.user_attrs.get("source") == "code"]
    assert proposer.stats["gave_up"] == 1 and proposer.stats["queued"] == 0
    assert proposer.stats["calls"] == (2 if isinstance(answer, str) else 1)
