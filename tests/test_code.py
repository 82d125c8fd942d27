"""Code as a hyperparameter: static checks, storage by hash, which program a trial runs
(`ProgramChooser`), the CodeProposer's repair loop and safe fallback, BO tuning a
program's knobs, refit/predict in the sandbox (`SandboxedModel`) and the exported best
program. The code writer is scripted (no LLM)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import joblib
import optuna
import pytest

from hyperpilot import studies
from hyperpilot.agent import Assistant
from hyperpilot.agent.code_proposer import CodeProposer, ProgramChooser, best_program_trial, save_program
from hyperpilot.cards import get_model_card
from hyperpilot.core.loop import StudyLoop
from hyperpilot.core.proposer import CardDefaults, Proposer, StudyContext
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Outcome, Suggestion
from hyperpilot.data import load_dataset
from hyperpilot.errors import TrialError
from hyperpilot.sandbox import InProcessExecutor, Limits, SandboxedModel, SandboxExecutor
from hyperpilot.task import Task
from hyperpilot.trainers import get_trainer
from hyperpilot.trainers.code import (
    BASELINE_PROGRAM,
    CUSTOM_CODE,
    MAX_CODE_BYTES,
    CodeRejected,
    check_program,
    code_id,
    extract_code,
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
    shared 2-core machine)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    ex = SandboxExecutor(TEST_LIMITS, trial_timeout=120)
    yield ex
    ex.close()
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before


def _assistant(executor: SandboxExecutor, **kw: Any) -> Assistant:
    return Assistant(executor=executor, llm="none", memory=False, **kw)


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
    assert program.code_id == code_id(FIXED) and program.code == FIXED
    assert (studies.study_dir("s1") / "programs" / f"{program.code_id}.py").read_text() == FIXED
    assert save_program("s1", FIXED) == program
    assert sorted(p.name for p in (studies.study_dir("s1") / "programs").iterdir()) == [f"{program.code_id}.py"]


def _handle(model: str, **attrs: Any) -> Any:
    """What `ProgramChooser.code_for` reads of a running trial."""
    config = get_model_card(model).default_config()
    return SimpleNamespace(model=model, config=config, suggestion=Suggestion(model, config, "test", attrs=attrs))


def test_program_chooser_runs_the_suggested_then_the_best_then_the_baseline_program() -> None:
    study = optuna.create_study(direction="maximize")
    chooser = ProgramChooser(study, "s2")
    assert chooser.code_for(_handle("decision_tree")) == (None, {})
    code, attrs = chooser.code_for(_handle(CUSTOM_CODE))  # no program yet: the baseline, stored like any other
    assert code == BASELINE_PROGRAM and attrs == {"code_id": code_id(BASELINE_PROGRAM), "code": BASELINE_PROGRAM}
    assert (studies.study_dir("s2") / "programs" / f"{code_id(BASELINE_PROGRAM)}.py").exists()
    assert chooser.code_for(_handle(CUSTOM_CODE, code=FIXED, code_id=code_id(FIXED)))[0] == FIXED

    params = {"model": CUSTOM_CODE, **{f"{CUSTOM_CODE}.{k}": v for k, v in get_model_card(CUSTOM_CODE).default_config().items()}}
    dists = {"model": optuna.distributions.CategoricalDistribution(["decision_tree", CUSTOM_CODE]),
             **{k: optuna.distributions.FloatDistribution(1e-4, 1000.0) for k in params if k != "model"}}
    for value, code in ((0.7, FIXED), (0.9, IMPROVED), (0.8, BROKEN)):
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value,
                                                  user_attrs={"code": code, "code_id": code_id(code)}))
    best = best_program_trial(study)
    assert best is not None and best.user_attrs["code"] == IMPROVED
    assert chooser.code_for(_handle(CUSTOM_CODE))[0] == IMPROVED  # BO tunes the knobs of the best program
    assert chooser.program_of(study.trials[0]) == FIXED


def test_a_program_is_new_with_the_knobs_of_a_tried_config() -> None:
    """The loop drops a suggestion it has tried; for `custom_code` that is the same knobs
    *and* the same program: a new program with the default knobs is a new trial."""
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], n_trials=4, seed=0).resolved("multiclass")
    study = optuna.create_study(direction="maximize")
    default = get_model_card(CUSTOM_CODE).default_config()
    todo = [FIXED, FIXED, IMPROVED]

    class Programs(Proposer):
        def suggest(self, ctx: StudyContext) -> Suggestion | None:
            code = todo.pop(0) if todo else None
            return None if code is None else Suggestion(CUSTOM_CODE, default, "code", attrs={"code_id": code_id(code), "code": code})

    loop = StudyLoop(StudyContext(task, study, StudySpace([get_model_card(CUSTOM_CODE, "multiclass")])),
                     lambda handle: Outcome(0.5, 0.0), [CardDefaults(), Programs()])
    loop.run(4)
    assert [t.user_attrs.get("code_id") for t in study.trials] == [None, code_id(FIXED), None, code_id(IMPROVED)]
    assert [t.user_attrs.get("source", "bo") for t in study.trials] == ["default", "code", "bo", "code"]
    assert loop.rejected == {"code": 1}  # the second FIXED with the same knobs


def test_programs_never_run_in_the_coordinating_process() -> None:
    d = load_dataset("sklearn:iris")
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE]).resolved("multiclass")
    with pytest.raises(TrialError, match="run a program in the sandbox"):
        get_trainer(CUSTOM_CODE).fit(get_model_card(CUSTOM_CODE).default_config(), d.X, d.y.to_numpy(), task)
    # the in-process executor hands a job with a program to its sandbox executor
    forwarded: list[Any] = []
    untrusted = SimpleNamespace(run=lambda job, on_report: forwarded.append(job) or "sandboxed", close=lambda: None)
    job = SimpleNamespace(code=FIXED)
    assert InProcessExecutor(untrusted=untrusted).run(job, lambda step, response: False) == "sandboxed"  # type: ignore[arg-type]
    assert forwarded == [job]


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
    for t in trials:  # every custom_code trial, BO's and the default's included, records which program it ran
        assert t.user_attrs["code_id"] == code_id(t.user_attrs["code"]), t.user_attrs
        assert (folder / "programs" / f"{t.user_attrs['code_id']}.py").read_text() == t.user_attrs["code"]
    assert result.best_model == CUSTOM_CODE
    best = max((t for t in trials if t.value is not None), key=lambda t: t.value)
    assert (folder / "best_program.py").read_text() == best.user_attrs["code"]
    recorded = studies.load_study(result.study_name).user_attrs["best_program"]
    assert recorded == {"code_id": best.user_attrs["code_id"], "trial": best.number, "value": best.value}
    report = result.report_path.read_text()
    assert "## Best program" in report and best.user_attrs["code_id"] in report

    fitted = joblib.load(result.model_path)  # refit in the sandbox; predictions in the sandbox too
    assert isinstance(fitted.pipeline, SandboxedModel) and fitted.pipeline.program == best.user_attrs["code"]
    assert isinstance(fitted.pipeline.model, bytes)  # never unpickled in this process
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
