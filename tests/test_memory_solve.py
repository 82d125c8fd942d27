"""The memory in the solve loop and on the command line (real chromadb in a temp dir)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from hyperpilot import Assistant, Task
from hyperpilot.agent.planner import Example
from hyperpilot.agent.policy import memory_examples
from hyperpilot.memory import Memory, MemoryProposer, format_examples, in_context_examples
from hyperpilot.memory.embed import HashEmbedder
from hyperpilot.memory.records import rank_normalise
from hyperpilot.memory.retrieve import MemoryExample

pytest.importorskip("chromadb")


@pytest.fixture(autouse=True)
def _no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERPILOT_LLM", "none")  # these tests are about the memory, not the planner


def _task(data: str, n: int = 4, **kw: object) -> Task:
    return Task(data=data, models=["knn"], metric="accuracy", n_trials=n, cv_folds=2, **kw)  # type: ignore[arg-type]


def test_second_similar_task_gets_memory_trials_from_the_first(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    first = Assistant(memory=memory).solve(_task("sklearn:iris", n=5))
    assert set(first.trials.source) <= {"default", "bo"}  # an empty memory adds nothing
    sid = f"{first.study_name}/knn"
    stored = memory.get_study(sid)
    assert stored.n_trials == 5 and stored.best_score == pytest.approx(first.cv_score)
    assert sorted(t.number for t in memory.trials(sid)) == [0, 1, 2, 3, 4]
    trials = memory.trials(sid)
    scores = [t.score if t.status == "complete" else None for t in trials]
    assert [t.rank for t in trials] == rank_normalise(scores, "maximize")  # rank-normalised in [0, 1], ties share

    proposer = MemoryProposer(memory, k=2)
    second = Assistant(proposers=[proposer], memory=None).solve(_task("sklearn:wine", n=4))
    rows = second.trials.sort_values("number")
    assert list(rows.source)[:2] == ["default", "memory"]  # warm start right after the card default
    assert proposer.warm and proposer.warm[0].neighbour.study.id == sid
    assert [e.study_id for e in proposer.examples()] == [sid]  # what the LLM planner can show
    ctx = SimpleNamespace(task=second.task, dataset_card=second.dataset_card, space=SimpleNamespace(models=["knn"]))
    (similar,) = proposer.similar_examples(ctx)  # type: ignore[arg-type]
    assert similar.study_id == sid and similar.dataset == "sklearn:iris" and similar.model == "knn"
    assert set(similar.config) == {"n_neighbors", "weights", "p"} and similar.best_score == pytest.approx(first.cv_score)
    (example,) = memory_examples(proposer)(ctx)  # type: ignore[arg-type]  # as the LLM planner sees it
    assert example.model == "knn" and example.task.startswith("sklearn:iris") and example.config == similar.config
    assert example.score == similar.best_score
    assert memory.count()[0] == 2


def test_llm_planner_gets_the_memory_examples() -> None:
    from hyperpilot.agent.llm.scripted import ScriptedLLM
    from hyperpilot.agent.policy import LLMProposer

    assistant = Assistant(llm=ScriptedLLM())
    memory_proposer, llm_proposer = assistant.proposers[0], assistant.proposers[-1]
    assert isinstance(memory_proposer, MemoryProposer) and isinstance(llm_proposer, LLMProposer)
    assert llm_proposer.examples is not None
    past = MemoryExample(study_id="iris-1/knn", dataset="sklearn:iris", model="knn", metric="accuracy",
                         direction="maximize", best_score=0.97, config={"n_neighbors": 13, "p": 1}, similarity=0.9,
                         card_text="Dataset: iris")
    seen: list[object] = []

    def similar(ctx: object) -> list[MemoryExample]:
        seen.append(ctx)
        return [past]

    memory_proposer.similar_examples = similar  # type: ignore[method-assign]
    ctx = object()
    assert llm_proposer.examples(ctx) == [  # type: ignore[arg-type]
        Example(task="sklearn:iris (accuracy, maximize)", model="knn", config={"n_neighbors": 13, "p": 1}, score=0.97)]
    assert seen == [ctx]  # asked with the study's context, when the planner starts
    assert Assistant(llm=ScriptedLLM(), memory=None).proposers[-1].examples is None  # type: ignore[attr-defined]


def test_in_context_examples_for_the_planner(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    result = Assistant(memory=memory).solve(_task("sklearn:iris", n=3))
    task = _task("sklearn:wine").resolved("multiclass")
    examples = in_context_examples(task, result.dataset_card, memory, k=3)
    assert len(examples) == 1 and examples[0].model == "knn" and examples[0].dataset == "sklearn:iris"
    assert set(examples[0].config) == {"n_neighbors", "weights", "p"}
    assert "sklearn:iris" in format_examples(examples) and format_examples([]) == ""
    assert in_context_examples(task, result.dataset_card, memory, exclude_datasets=["sklearn:iris"]) == []


def test_corrupt_store_warns_once_and_solve_runs_without_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mem"
    path.mkdir()
    (path / "chroma.sqlite3").write_bytes(b"garbage" * 500)
    with caplog.at_level(logging.WARNING, logger="hyperpilot.memory"):
        result = Assistant(memory=Memory(path, embedder=HashEmbedder())).solve(_task("sklearn:iris", n=3))
    assert result.n_trials == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "hyperpilot.memory"]
    assert len(warnings) == 1 and warnings[0].startswith("memory unavailable, solving without memory:")
    assert "\n" not in warnings[0] and str(path) in warnings[0]


def test_default_memory_lives_under_hyperpilot_home_and_can_be_switched_off(hyperpilot_home: Path) -> None:
    from hyperpilot.memory.proposer import memory_proposer

    default = memory_proposer(True, [])
    assert default is not None and default.memory.path == hyperpilot_home / "memory"
    assert memory_proposer(None, []) is None and memory_proposer(False, []) is None
    assert not any(isinstance(p, MemoryProposer) for p in Assistant(memory=None).proposers)
    assert isinstance(Assistant().proposers[0], MemoryProposer)


def test_memory_cli_list_show_search_export_import_forget(tmp_path: Path, hyperpilot_home: Path) -> None:
    from hyperpilot.cli import app

    memory = Memory(embedder=HashEmbedder())  # the default location: HYPERPILOT_HOME/memory
    result = Assistant(memory=memory).solve(_task("sklearn:iris", n=3))
    sid = f"{result.study_name}/knn"
    runner = CliRunner()
    out = runner.invoke(app, ["memory", "list"])
    assert out.exit_code == 0 and sid[:20] in out.output and "1 studies, 3 trials" in out.output
    out = runner.invoke(app, ["memory", "show", sid])
    assert out.exit_code == 0 and "n_neighbors" in out.output
    assert runner.invoke(app, ["memory", "show", "nope"]).exit_code == 2
    out = runner.invoke(app, ["memory", "search", "flowers with petals"])
    assert out.exit_code == 0 and "sklearn:iris" in out.output
    pack = tmp_path / "pack.jsonl"
    assert runner.invoke(app, ["memory", "export", str(pack)]).exit_code == 0
    assert len(pack.read_text().splitlines()) == 4
    with pack.open("a") as f:
        f.write("{oops\n")
    other = tmp_path / "other"
    out = runner.invoke(app, ["memory", "import", str(pack), "--path", str(other), "--origin", "test-pack"])
    assert out.exit_code == 0 and "imported 1 studies and 3 trials" in out.output and ":5: skipped" in out.output
    assert Memory(other).get_study(sid).origin == "test-pack"
    out = runner.invoke(app, ["memory", "forget", result.study_name])
    assert out.exit_code == 0 and "forgot 1" in out.output
    assert json.loads(json.dumps(Memory(embedder=HashEmbedder()).count())) == [0, 0]


def test_no_memory_flag_keeps_the_memory_untouched(hyperpilot_home: Path) -> None:
    from hyperpilot.cli import app

    out = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--model", "knn", "--trials", "2",
                                   "--folds", "2", "--no-memory"])
    assert out.exit_code == 0, out.output
    assert not (hyperpilot_home / "memory").exists()
