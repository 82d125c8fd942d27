"""The command line, through typer's CliRunner on `hyperpilot.cli.app`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from hyperpilot import studies
from hyperpilot.cards import model_cards
from hyperpilot.cli import app

ENV = {"HYPERPILOT_LLM": "none", "COLUMNS": "240", "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _pure_bo_one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with threadpool_limits(1):
        yield


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=ENV)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if hasattr(cmd, "commands"):  # a sub-app (typer vendors its own click)
            yield from _commands(cmd, (*prefix, name))


ALL_COMMANDS = sorted(_commands(typer.main.get_command(app)))  # type: ignore[arg-type]


def test_the_commands_exist() -> None:
    for expected in [("solve",), ("resume",), ("demo",), ("models",), ("studies",), ("studies", "list"), ("studies", "show")]:
        assert expected in ALL_COMMANDS


def test_top_level_help() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("solve", "resume", "demo", "models", "studies"):
        assert name in result.output
    bare = invoke()
    assert "Usage" in bare.output and "solve" in bare.output  # no_args_is_help


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and command[-1] in result.output
    assert "Traceback" not in result.output


def test_models_lists_every_card() -> None:
    result = invoke("models")
    assert result.exit_code == 0, result.output
    for name, card in model_cards().items():
        assert name in result.output
        assert card.space.names[0] in result.output


def test_models_json_is_the_agent_tools_answer() -> None:
    from hyperpilot.tools.models import ListModelsArgs, list_models
    from hyperpilot.tools.runtime import Runtime

    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == list_models(ListModelsArgs(), Runtime())["models"]


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_solve_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "rather" / "long" / "path" / "so" / "that" / "a" / "narrow" / "terminal" / "would" / "wrap" / "it.csv"
    line = _one_line_error(CliRunner().invoke(app, ["solve", "--data", str(missing), "--target", "y"], env={**ENV, "COLUMNS": "60"}))
    assert f"data file '{missing}' does not exist" in line


def test_solve_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"\x00\x01not parquet at all\xff" * 50)
    line = _one_line_error(invoke("solve", "--data", str(path), "--target", "y"))
    assert "cannot read" in line and "garbage.parquet" in line


def test_solve_missing_target(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    line = _one_line_error(invoke("solve", "--data", str(path), "--target", "Label"))
    assert "target column 'Label' is not in" in line and "a, b, label" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trials", "0"], "n_trials"),
        (["--metric", "auc_pr"], "unknown metric 'auc_pr'"),
        (["--sampler", "smac"], "unknown sampler 'smac'"),
        (["--task", "ranking"], "task_type"),
        (["--model", "xgboost"], "unknown model 'xgboost'"),
        (["--study", "bad name"], "study name 'bad name'"),
        (["--metric", "rmse"], "metric 'rmse' does not apply to a multiclass task"),
    ],
)
def test_solve_bad_options(args: list[str], needle: str) -> None:
    line = _one_line_error(invoke("solve", "--data", "sklearn:iris", *args))
    assert needle in line


def test_solve_unknown_builtin() -> None:
    assert "unknown built-in dataset 'sklearn:mnist'" in _one_line_error(invoke("solve", "--data", "sklearn:mnist"))


def test_demo() -> None:
    result = invoke("demo", "--trials", "1")
    assert result.exit_code == 0, result.output
    assert "best" in result.output and "hist_gradient_boosting" in result.output
    assert "report:" in result.output
    (summary,) = studies.list_studies()
    assert summary.n_trials == 1


def test_solve_then_studies_list_show_and_resume() -> None:
    result = invoke("solve", "--data", "sklearn:iris", "--model", "knn", "--trials", "3", "--folds", "2", "--study", "cli-iris")
    assert result.exit_code == 0, result.output
    assert "best" in result.output and "knn" in result.output
    assert "trial   0  default" in result.output
    assert "hyperpilot resume cli-iris" in result.output
    folder = studies.home() / "studies" / "cli-iris"
    assert (folder / "report.md").is_file() and (folder / "model.joblib").is_file()

    listed = invoke("studies", "list")
    assert listed.exit_code == 0, listed.output
    assert "cli-iris" in listed.output and "maximize" in listed.output

    shown = invoke("studies", "show", "cli-iris")
    assert shown.exit_code == 0, shown.output
    assert '"data": "sklearn:iris"' in shown.output
    assert "default" in shown.output and "COMPLETE" in shown.output and "report:" in shown.output

    resumed = invoke("resume", "cli-iris", "--trials", "4")
    assert resumed.exit_code == 0, resumed.output
    assert "best" in resumed.output and "trial   3" in resumed.output
    assert len(studies.load_study("cli-iris").trials) == 4


def test_unknown_study() -> None:
    assert "no study named 'nope'" in _one_line_error(invoke("studies", "show", "nope"))
    assert "no study named 'nope'" in _one_line_error(invoke("resume", "nope"))


def test_studies_list_when_empty_and_with_an_unstarted_study() -> None:
    result = invoke("studies", "list")
    assert result.exit_code == 0, result.output
    import optuna

    ran = optuna.create_study(study_name="ran", storage=studies.storage())
    ran.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    queued = optuna.create_study(study_name="queued-only", storage=studies.storage())
    queued.enqueue_trial({"x": 1.0})  # no trial ever started: no start time
    result = invoke("studies", "list")
    assert result.exit_code == 0, result.output
    assert "queued-only" in result.output and "ran" in result.output
    assert [s.study_name for s in studies.list_studies()] == ["ran", "queued-only"]
