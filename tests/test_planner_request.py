"""`task_from_text`: a request in words -> a Task, or a question when something is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperpilot.agent.llm import LLMUnavailable, ScriptedLLM
from hyperpilot.agent.request import task_from_text
from hyperpilot.errors import TaskError


@pytest.fixture()
def churn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rows = ["age,plan,monthly_fee,churned"] + [f"{20 + i % 50},{'pro' if i % 3 else 'basic'},{10 + i % 7},{int(i % 4 == 0)}"
                                               for i in range(60)]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_issue_example(churn: Path) -> None:
    task = task_from_text("tune a random forest on data.csv to predict churned, maximise F1, 40 trials")
    assert (Path(task.data).resolve(), task.target, task.models, task.metric, task.n_trials) == (churn, "churned", ["random_forest"], "f1", 40)


@pytest.mark.parametrize("text, expected", [
    ("tune svm and knn on sklearn:wine for balanced accuracy, 3-fold, seed 7", {
        "data": "sklearn:wine", "models": ["svm", "knn"], "metric": "balanced_accuracy", "cv_folds": 3, "seed": 7}),
    ("gradient boosting on the iris data, roc auc, within 2 minutes", {
        "data": "sklearn:iris", "models": ["hist_gradient_boosting"], "metric": "roc_auc", "timeout": 120.0}),
    ("regression on sklearn:diabetes minimising root mean squared error with gaussian process BO, budget of 12", {
        "data": "sklearn:diabetes", "task_type": "regression", "metric": "rmse", "sampler": "gp", "n_trials": 12}),
])
def test_rules_read_plain_requests(text: str, expected: dict[str, object]) -> None:
    task = task_from_text(text)
    assert {k: getattr(task, k) for k in expected} == expected


@pytest.mark.parametrize("text, question", [
    ("tune a random forest to predict churn", "which data"),
    ("tune a random forest on missing.csv to predict churn", "no such file"),
    ("tune knn on sklearn:iris for accuracy or f1", "which metric"),
    ("compare a.csv and b.csv", "which data"),
    ("tune a random forest on data.csv", "which column should be predicted"),
    ("tune a random forest on data.csv to predict revenue", "which column should be predicted"),
    ("", "empty"),
])
def test_missing_or_ambiguous_pieces_raise_a_question(churn: Path, text: str, question: str) -> None:
    with pytest.raises(TaskError, match=question):
        task_from_text(text)


def test_overrides_win_over_the_text(churn: Path) -> None:
    task = task_from_text("tune svm on data.csv to predict churned, 40 trials", n_trials=5, models=["knn"])
    assert task.n_trials == 5 and task.models == ["knn"]


def test_llm_fills_a_target_grounded_in_the_request(churn: Path) -> None:
    llm = ScriptedLLM([json.dumps({"target": "churned"})])
    task = task_from_text("which customers have churned? use a random forest on data.csv", llm=llm)
    assert task.target == "churned"
    assert llm.requests[0][1]["properties"]["target"]["anyOf"][0]["enum"] == ["age", "plan", "monthly_fee", "churned"]


def test_an_ungrounded_llm_guess_is_only_a_suggestion(churn: Path) -> None:
    llm = ScriptedLLM([json.dumps({"target": "plan"})])
    with pytest.raises(TaskError, match="Perhaps 'plan'"):
        task_from_text("tune a random forest on data.csv to predict who leaves", llm=llm)


def test_a_failing_llm_leaves_the_question(churn: Path) -> None:
    with pytest.raises(TaskError, match="which column"):
        task_from_text("tune a random forest on data.csv", llm=ScriptedLLM([LLMUnavailable("down")] * 3))


def test_cli_solve_takes_a_request_and_prints_the_llm_accounting(churn: Path) -> None:
    from hyperpilot.cli import app

    result = CliRunner().invoke(app, ["solve", "tune knn on data.csv to predict churned, 5 trials, 2-fold",
                                      "--llm", "scripted", "--llm-rate", "0.5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "LLM planner" in result.output and "scripted" in result.output and "rank of llm trials" in result.output


def test_cli_solve_without_data_or_request_says_what_to_give() -> None:
    from hyperpilot.cli import app

    result = CliRunner().invoke(app, ["solve", "--llm", "none"])
    assert result.exit_code == 2 and "--data" in result.output
