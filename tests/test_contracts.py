"""The shipped contract suites (`hyperpilot.testing`) over every registered implementation
of each extension point."""

from __future__ import annotations

import pytest

from hyperpilot import testing
from hyperpilot.agent.llm import ScriptedLLM
from hyperpilot.agent.policy import LLMProposer
from hyperpilot.memory import Memory, MemoryProposer
from hyperpilot.samplers import SAMPLERS
from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor, layers
from hyperpilot.task import Task
from hyperpilot.trainers import trainers

NEEDS_DATA = ("torch_cnn", "lora_text")  # images, text: checked on data of their own below
TRAINERS = sorted(n for n in trainers() if n != "custom_code" and n not in NEEDS_DATA)  # custom_code: only as a program


@pytest.mark.parametrize("name", TRAINERS)
def test_trainer_contract(name: str) -> None:
    testing.check_trainer(trainers()[name])


def _digits(task_type: str) -> tuple:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True, as_frame=True)
    keep = y.isin([0, 1]) if task_type == "binary" else y.isin([0, 1, 2])
    task = Task(data="digits", metric="accuracy", cv_folds=3).resolved(task_type)  # type: ignore[arg-type]
    return X[keep].iloc[:60].reset_index(drop=True), y[keep].iloc[:60].reset_index(drop=True), task


def _texts(task_type: str) -> tuple:
    from evals.bench_dl import docstring_texts

    frame = docstring_texts(12)
    if task_type == "multiclass":
        frame["topic"] = frame["topic"] + frame["text"].str.len().gt(60).map({True: "-long", False: ""})
    task = Task(data="texts", metric="accuracy", cv_folds=3).resolved(task_type)  # type: ignore[arg-type]
    return frame[["text"]], frame["topic"], task


def test_image_trainer_contract() -> None:
    testing.check_trainer(trainers()["torch_cnn"], n_configs=2, data=_digits)


def test_text_trainer_contract() -> None:
    testing.check_trainer(trainers()["lora_text"], n_configs=1, data=_texts)


def test_program_trainer_contract(tmp_path) -> None:
    from hyperpilot.trainers.code import BASELINE_PROGRAM, ProgramTrainer

    path = tmp_path / "program.py"
    path.write_text(BASELINE_PROGRAM, encoding="utf-8")
    testing.check_trainer(ProgramTrainer.from_file(path), n_configs=2)


@pytest.mark.parametrize("make", [lambda: InProcessExecutor(), lambda: SandboxExecutor(workers=2)], ids=["inprocess", "sandbox"])
def test_executor_contract(make) -> None:
    testing.check_executor(make())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_contract(name: str) -> None:
    if name == "cmaes":
        pytest.importorskip("cmaes")
    testing.check_sampler(name)


def _proposers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {
        "llm-picker": lambda: LLMProposer(ScriptedLLM(), rate=0.5, summarise=False),
        "llm-free": lambda: LLMProposer(ScriptedLLM(free_proposals=True), rate=1.0, summarise=False),
        "memory": lambda: MemoryProposer(Memory(tmp_path_factory.mktemp("mem"))),
    }


@pytest.mark.parametrize("name", ["llm-picker", "llm-free", "memory"])
def test_proposer_contract(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    testing.check_proposer(_proposers(tmp_path_factory)[name])


def test_code_proposer_contract() -> None:
    from hyperpilot.agent.code_proposer import CodeProposer

    testing.check_proposer(lambda: CodeProposer(lambda prompt: "not a program"))


AVAILABLE = ["plain"] + [x for x, ok in (("bwrap", layers.bwrap_status()[0]), ("unshare", layers.unshare_status()[0])) if ok]


@pytest.mark.parametrize("layer", AVAILABLE)
def test_sandbox_layer_contract(layer: str) -> None:
    testing.check_sandbox_layer(layer)


def test_llm_contract_scripted() -> None:
    testing.check_llm(ScriptedLLM())


@pytest.mark.slow
def test_llm_contract_embedded() -> None:
    from hyperpilot.agent.llm import resolve_llm

    llm = resolve_llm("embedded")
    assert llm is not None
    testing.check_llm(llm)


def test_a_broken_trainer_is_caught() -> None:
    from hyperpilot.trainers.sklearn import SklearnTrainer

    class Mutating(SklearnTrainer):
        def fit(self, config, X, y, task):  # type: ignore[no-untyped-def]
            config["extra"] = 1
            return super().fit({k: v for k, v in config.items() if k != "extra"}, X, y, task)

    with pytest.raises(testing.ContractError, match="mutated its config"):
        testing.check_trainer(Mutating(trainers()["knn"].card))
