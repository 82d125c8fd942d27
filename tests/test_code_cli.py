"""`hyperpilot solve --code` end to end: the configured LLM (here a scripted writer, through
`cli.commands._planner`) writes real scikit-learn programs, which are checked, run in the
real sandbox as `custom_code` trials, repaired when they crash; the CLI output and the report
count them from the study's trials."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from hyperpilot import studies
from hyperpilot.agent.llm import ScriptedLLM
from hyperpilot.agent.llm.base import Message
from hyperpilot.cli import app
from hyperpilot.cli import commands as cli_commands
from hyperpilot.report import program_summary

ENV = {"HYPERPILOT_LLM": "none", "COLUMNS": "240", "OMP_NUM_THREADS": "1"}
LOGISTIC = """from sklearn.linear_model import LogisticRegression


def build(config):
    return LogisticRegression(C=1.0 / config["alpha"], max_iter=300)
"""
CRASHES = LOGISTIC.replace("LogisticRegression(C", "LogisticRegresion(C")
NEIGHBOURS = """from sklearn.neighbors import KNeighborsClassifier


def build(config):
    return KNeighborsClassifier(n_neighbors=5)
"""


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with threadpool_limits(1):
        yield


def writer_llm(first: str) -> ScriptedLLM:
    """A scripted LLM: programs for the code prompts (`first`, then LOGISTIC as the repair,
    NEIGHBOURS as the improvement), and no valid JSON for the planner (which falls back to BO)."""
    def step(messages: list[Message], schema: dict[str, Any] | None) -> str:
        prompt = messages[-1]["content"]
        if schema is not None:
            return "no JSON from this writer"
        if prompt.startswith("Your program failed"):
            return "Fixed it:\n```python\n" + LOGISTIC + "```"
        if prompt.startswith("Your program scored"):
            return "```python\n" + NEIGHBOURS + "```"
        return "Here is my model:\n```python\n" + first + "```"

    return ScriptedLLM([step] * 60)


def solve_with_code(monkeypatch: pytest.MonkeyPatch, llm: ScriptedLLM, *extra: str) -> tuple[Any, str]:
    monkeypatch.setattr(cli_commands, "_planner", lambda spec, key_env: llm)
    result = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--model", "knn", "--code", "--trials", "4",
                                      "--folds", "2", "--no-memory", "--study", "coded", *extra], env=ENV)
    assert result.exit_code == 0, result.output
    return studies.load_study("coded"), result.output


def test_solve_code_runs_a_written_program_in_the_sandbox_and_counts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = writer_llm(LOGISTIC)
    study, output = solve_with_code(monkeypatch, llm, "--json")
    trials = study.trials
    assert studies.stored_task(study).models == ["knn", "custom_code"]
    written = [t for t in trials if t.user_attrs.get("source") == "code"]
    assert [t.user_attrs["code"] for t in written] == [LOGISTIC, NEIGHBOURS]  # the program, then the improvement
    assert [t.state.name for t in written] == ["COMPLETE", "COMPLETE"] and all(0.5 < t.value <= 1.0 for t in written)
    assert [t.user_attrs["repair"] for t in written] == [0, 0]
    prompts = [m[-1]["content"] for m, schema in llm.requests if schema is None]
    assert prompts[0].startswith("Write a Python module") and "Task: multiclass, metric accuracy" in prompts[0]

    printed = json.loads(output[output.index("{"):])
    counts = printed["programs"]
    assert counts == program_summary(study)  # what the CLI prints is read from the study
    assert (counts["ran"], counts["completed"], counts["failed"], counts["repaired"]) == (2, 2, 0, 0)
    assert counts["writer"]["calls"] == 2 and counts["writer"]["rejected"] == 0 and counts["writer"]["writer"] == "scripted:scripted"
    best = counts["best"]
    assert best is not None and Path(best["file"]).read_text() == trials[best["trial"]].user_attrs["code"]
    assert (best["by"] == "the LLM") == (trials[best["trial"]].user_attrs["source"] == "code")

    report = Path(printed["report_path"]).read_text()
    assert "## Programs (code as a hyperparameter)" in report and "| programs run | 2: 2 completed, 0 failed |" in report
    assert "| repaired | 0 (repairs run: 0) |" in report and "## Best program" in report


def test_a_crashing_program_is_repaired_and_the_table_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    study, output = solve_with_code(monkeypatch, writer_llm(CRASHES))
    written = [t for t in study.trials if t.user_attrs.get("source") == "code"]
    assert [t.user_attrs["code"] for t in written] == [CRASHES, LOGISTIC]
    assert [t.state.name for t in written] == ["FAIL", "COMPLETE"] and [t.user_attrs["repair"] for t in written] == [0, 1]
    assert "LogisticRegresion" in written[0].user_attrs["error"]
    counts = program_summary(study)
    assert counts is not None and (counts["ran"], counts["failed"], counts["repaired"]) == (2, 1, 1)
    text = re.sub(r"\s+", " ", output)
    assert "programs (--code)" in text and "2: 1 completed, 1 failed" in text and "1 (repairs run: 1)" in text
    assert "best program, first lines:" in text and "from sklearn" in text


def test_code_without_an_llm_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--code", "--llm", "none"], env=ENV)
    assert result.exit_code == 2 and "--code needs an LLM to write the programs" in result.output
    assert "Traceback" not in result.output
