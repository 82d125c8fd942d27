"""The command line's options: every option given wins over a request (one code path), run
settings stored with the study and reused by `resume`, `--time`, `--json`, `--version`,
notices, output that never breaks a name at 80 columns, and imports light enough for a fast
`--help`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from hyperpilot import Assistant, Task, studies
from hyperpilot.agent.llm import ScriptedLLM, resolve_llm
from hyperpilot.cards import model_cards
from hyperpilot.cli import app
from hyperpilot.cli.options import parse_duration
from hyperpilot.errors import HyperpilotError, TaskError
from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor

ENV = {"HYPERPILOT_LLM": "none", "COLUMNS": "240", "OMP_NUM_THREADS": "1"}
HEAVY = ("optuna", "sklearn", "torch", "pandas", "chromadb", "hyperpilot.agent")


@pytest.fixture(autouse=True)
def _pure_bo_one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with threadpool_limits(1):
        yield


def invoke(*args: str, **env: str | None) -> Any:
    return CliRunner().invoke(app, list(args), env={**ENV, **env})


class Captured(HyperpilotError):
    """Raised by the stand-in `Assistant.solve` once it has seen what reached it."""


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Assistant, Task]]:
    """What reaches `Assistant.solve` (the solve itself stops there, with one error line)."""
    seen: list[tuple[Assistant, Task]] = []

    def solve(self: Assistant, task: Task) -> Any:
        seen.append((self, task))
        raise Captured("captured")

    monkeypatch.setattr(Assistant, "solve", solve)
    return seen


@pytest.fixture
def table_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "table.csv"
    path.write_text("a,b,y,z\n" + "".join(f"{i},{i % 3},{i % 3},{i % 2}\n" for i in range(60)))
    return path


EVERY_TASK_OPTION = ["--target", "y", "--model", "knn", "--model", "svm", "--metric", "balanced_accuracy",
                     "--task", "multiclass", "--trials", "7", "--time", "1h30m", "--seed", "5", "--folds", "3",
                     "--sampler", "random", "--study", "every-option", "--encoding", "latin-1", "--drop", "a", "--drop", "b",
                     "--text-column", "b", "--base-model", "models/encoder"]
EVERY_RUN_OPTION = ["--llm", "scripted", "--llm-rate", "0.3", "--no-memory", "--workers", "2", "--trial-timeout", "30",
                    "--trial-memory", "3000"]
REQUEST = "tune a random forest on other.csv to predict z, maximise f1, 40 trials, 10-fold, seed 9, within 5 minutes"


@pytest.mark.parametrize("request_text", [None, REQUEST], ids=["options", "request+options"])
def test_every_solve_option_is_applied_and_wins_over_the_request(
        request_text: str | None, table_csv: Path, captured: list[tuple[Assistant, Task]]) -> None:
    args = ["solve", *([request_text] if request_text else []), "--data", str(table_csv), *EVERY_TASK_OPTION,
            *EVERY_RUN_OPTION]
    result = invoke(*args)
    assert result.exit_code == 2 and "error: captured" in result.stderr, result.output
    ((assistant, task),) = captured
    assert task.data == str(table_csv) and task.target == "y" and task.models == ["knn", "svm"]
    assert task.metric == "balanced_accuracy" and task.task_type == "multiclass"
    assert task.n_trials == 7 and task.timeout == 5400 and task.seed == 5 and task.cv_folds == 3
    assert task.sampler == "random" and task.study_name == "every-option" and task.encoding == "latin-1"
    assert task.drop == ["a", "b"] and task.text_column == "b" and task.base_model == "models/encoder"
    assert isinstance(assistant.llm, ScriptedLLM) and assistant.llm_rate == 0.3 and not assistant.uses_memory
    assert assistant.workers == 2 and isinstance(assistant.executor, SandboxExecutor)
    assert assistant.executor.trial_timeout == 30 and assistant.executor.limits.memory_mb == 3000
    assert assistant.run_settings() == {"llm": "scripted", "llm_rate": 0.3, "sampler": None, "memory": False,
                                        "workers": 2, "no_sandbox": False, "trial_timeout": 30.0, "trial_memory": 3000,
                                        "ray": None}


def test_no_sandbox_and_the_request_alone(table_csv: Path, captured: list[tuple[Assistant, Task]]) -> None:
    assert invoke("solve", "--data", str(table_csv), "--target", "y", "--no-sandbox").exit_code == 2
    assert isinstance(captured[0][0].executor, InProcessExecutor)
    assert captured[0][0].run_settings()["no_sandbox"] is True
    # without options the request's own values stand (so the test above really overrode them)
    (table_csv.parent / "other.csv").write_text(table_csv.read_text())
    assert invoke("solve", REQUEST).exit_code == 2
    task = captured[1][1]
    assert (task.target, task.n_trials, task.cv_folds, task.seed) == ("z", 40, 10, 9)
    assert task.models == ["random_forest"] and task.metric == "f1"


@pytest.mark.parametrize(("args", "n_trials", "timeout"), [
    (["--time", "10m"], None, 600), (["--timeout", "90"], None, 90), (["--time", "1h", "--trials", "5"], 5, 3600),
    ([], 20, None), (["--trials", "3"], 3, None),
])
def test_a_time_budget_alone_has_no_trial_cap(args: list[str], n_trials: int | None, timeout: float | None,
                                               captured: list[tuple[Assistant, Task]]) -> None:
    invoke("solve", "--data", "sklearn:iris", *args)
    assert (captured[0][1].n_trials, captured[0][1].timeout) == (n_trials, timeout)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400),
                                               ("2 min", 120), ("600", 600), ("45 seconds", 45), (" 1h 5m 3s ", 3903)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "1h30", "m", "", "0", "-5", "0s", "inf", "nan"])
def test_a_bad_duration_is_one_line(text: str) -> None:
    with pytest.raises(TaskError, match="--time"):
        parse_duration(text)
    result = invoke("solve", "--data", "sklearn:iris", "--time", text)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.strip()][-1].startswith("error: --time")


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[Assistant]:
    """The Assistants whose (real) solve runs."""
    seen: list[Assistant] = []
    real = Assistant.solve

    def solve(self: Assistant, task: Task) -> Any:
        seen.append(self)
        return real(self, task)

    monkeypatch.setattr(Assistant, "solve", solve)
    return seen


def test_resume_runs_as_the_study_last_ran_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    first = invoke("solve", "--data", "sklearn:iris", "--model", "knn", "--trials", "2", "--folds", "2", "--study", "rs",
                   "--llm", "none", "--llm-rate", "0.3", "--no-memory", "--trial-timeout", "60", "--trial-memory", "3000",
                   "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)  # stdout is the JSON document alone; progress went to stderr
    assert report["study"] == "rs" and report["n_trials"] == 2 and report["best_model"] == "knn"
    assert "trial   0" in first.stderr and "plan: multiclass classification of 'target' in sklearn:iris" in first.stderr
    stored = studies.run_settings(studies.load_study("rs"))
    assert stored == {"llm": "none", "llm_rate": 0.3, "sampler": None, "memory": False, "workers": 1,
                      "no_sandbox": False, "trial_timeout": 60.0, "trial_memory": 3000, "ray": None}

    # $HYPERPILOT_LLM unset: the default would be the embedded model; the study says none
    again = invoke("resume", "rs", "--trials", "3", "--json", HYPERPILOT_LLM=None)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["n_trials"] == 3
    assistant = seen[-1]
    assert assistant.llm is None and assistant.llm_rate == 0.3 and not assistant.uses_memory
    assert assistant.executor.trial_timeout == 60 and assistant.executor.limits.memory_mb == 3000
    assert studies.run_settings(studies.load_study("rs")) == stored


def test_resume_options_override_the_stored_settings(monkeypatch: pytest.MonkeyPatch,
                                                     captured: list[tuple[Assistant, Task]]) -> None:
    study = studies.open_study(Task(data="sklearn:iris", models=["knn"], n_trials=4, study_name="old").resolved("multiclass"))
    studies.set_run_settings(study, {"llm": "none", "llm_rate": 0.3, "sampler": None, "memory": False, "workers": 1,
                                     "no_sandbox": False, "trial_timeout": 60.0, "trial_memory": 3000})
    invoke("resume", "old", "--llm", "scripted", "--workers", "2", "--no-sandbox", "--sampler", "random",
           "--time", "1m", HYPERPILOT_LLM=None)
    assistant, task = captured[-1]
    assert isinstance(assistant.llm, ScriptedLLM) and assistant.workers == 2 and assistant.sampler == "random"
    assert isinstance(assistant.executor, InProcessExecutor) and assistant.llm_rate == 0.3
    assert task.timeout == 60 and task.n_trials is None and task.models == ["knn"]
    invoke("resume", "old", "--trials", "9", "--memory", HYPERPILOT_LLM="scripted")  # an env var is not an option given
    assistant, task = captured[-1]
    assert assistant.llm is None and assistant.uses_memory and task.n_trials == 9
    # a study from before run settings were stored: the defaults
    studies.open_study(Task(data="sklearn:iris", models=["knn"], n_trials=4, study_name="older").resolved("multiclass"))
    invoke("resume", "older")
    assert captured[-1][0].uses_memory and captured[-1][0].workers == 1


def test_the_stored_llm_spec_rebuilds_the_llm_and_holds_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LLM_KEY", "sk-secret-value-123456")
    llm = resolve_llm("http://user:password@127.0.0.1:9/v1#some-model", key_env="MY_LLM_KEY")
    settings = Assistant(llm=llm, memory=None).run_settings()
    assert settings["llm"] == "http://127.0.0.1:9/v1#some-model?key_env=MY_LLM_KEY"
    assert "password" not in json.dumps(settings) and "secret" not in json.dumps(settings)
    again = resolve_llm(settings["llm"])
    assert (again.base_url, again.model, again.api_key_env) == ("http://127.0.0.1:9/v1", "some-model", "MY_LLM_KEY")
    assert Assistant(llm="none", memory=None).run_settings()["llm"] == "none"
    assert Assistant(llm=ScriptedLLM(["{}"]), memory=None).run_settings()["llm"] is None  # a script: not rebuildable


def test_on_start_gets_the_resolved_task_once_before_the_first_trial() -> None:
    events: list[Any] = []
    assistant = Assistant(llm="none", memory=None, executor=InProcessExecutor(), sampler="random",
                          on_start=lambda t: events.append(t), on_trial=lambda r: events.append(r.number))
    result = assistant.solve(Task(data="sklearn:iris", models=["knn"], n_trials=2, cv_folds=2, study_name="hooked"))
    start, *trials = events
    assert isinstance(start, Task) and trials == [0, 1]
    assert start.task_type == "multiclass" and start.metric == "accuracy" and start.study_name == "hooked"
    assert start.describe() == ("multiclass classification of 'target' in sklearn:iris · metric accuracy (maximise) · "
                                "models knn · budget 2 trials · 2-fold CV")
    assert studies.run_settings(studies.load_study(result.study_name)) == {
        "llm": "none", "llm_rate": None, "sampler": "random", "memory": False, "workers": 1, "no_sandbox": True,
        "trial_timeout": None, "trial_memory": None, "ray": None}


def test_describe() -> None:
    task = Task(data="data/iris.csv", target="species", task_type="multiclass", metric="accuracy",
                models=["random_forest", "svm"], n_trials=20, timeout=600)
    assert task.describe() == ("multiclass classification of 'species' in iris.csv · metric accuracy (maximise) · "
                               "models random_forest, svm · budget 20 trials, 10 min · 5-fold CV (a holdout if the table is large for the time)")
    assert task.updated(validation="holdout").describe().endswith("· holdout (1/5 of the training rows)")
    assert task.updated(timeout=None).describe().endswith("· 5-fold CV")  # no time budget: auto is CV
    loose = Task(data="x.csv", target="y", metric="rmse", timeout=5430, drop=["id"])
    assert loose.describe() == ("a model (task type from the data) of 'y' in x.csv · metric rmse (minimise) · "
                                "default models · budget 1 h 30 min 30 s (no trial cap) · 5-fold CV (a holdout if the table is large for the time) · dropping id")


def test_a_request_with_target_and_seed_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_iris

    monkeypatch.chdir(tmp_path)
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame.to_csv(tmp_path / "flowers.csv", index=False)
    request = "tune knn on flowers.csv, 2 trials, 2-fold"
    asked = invoke("solve", request)
    assert asked.exit_code == 2 and "which column" in asked.stderr  # what --target answers below
    name = "a-long-study-name-so-that-the-paths-and-the-resume-hint-are-wider-than-eighty-columns-1"
    result = invoke("solve", request, "--target", "species", "--seed", "3", "--no-memory", "--study", name, COLUMNS="80")
    assert result.exit_code == 0, result.output
    task = studies.stored_task(studies.load_study(name))
    assert (task.target, task.seed, task.n_trials, task.cv_folds, task.models) == ("species", 3, 2, 2, ["knn"])
    assert "plan: multiclass classification of 'species' in flowers.csv · metric accuracy (maximise) · models knn · " \
           "budget 2 trials · 2-fold CV" in result.stderr
    # at 80 columns nothing a user copies is broken: each sits whole on its own line
    lines = result.stdout.splitlines()
    folder = studies.home() / "studies" / name
    for expected in (f"model:  {folder / 'model.joblib'}", f"report: {folder / 'report.md'}", f"study:  {name}",
                     f"resume: hyperpilot resume {name}"):
        assert expected in lines, result.stdout

    listed = invoke("studies", "list", COLUMNS="80")
    assert listed.exit_code == 0 and name in listed.stdout.splitlines() and "…" not in listed.stdout
    rows = json.loads(invoke("studies", "list", "--json").stdout)
    assert [r["study"] for r in rows] == [name] and rows[0]["trials"] == 2 and rows[0]["direction"] == "maximize"
    shown = json.loads(invoke("studies", "show", name, "--json").stdout)
    assert shown["task"]["seed"] == 3 and shown["run"]["memory"] is False and len(shown["trials"]) == 2
    assert shown["trials"][0]["source"] == "default" and shown["report"].endswith("report.md")
    text = invoke("studies", "show", name, COLUMNS="80")
    assert text.exit_code == 0 and "…" not in text.stdout and "COMPLETE" in text.stdout


def test_models_show_full_names_and_json() -> None:
    narrow = invoke("models", COLUMNS="80")
    assert narrow.exit_code == 0 and "…" not in narrow.stdout
    words = set(narrow.stdout.replace(",", " ").replace("│", " ").split())
    for name, card in model_cards().items():
        assert name in words and set(card.space.names) <= words
    listed = json.loads(invoke("models", "--json").stdout)
    assert {c["name"] for c in listed} == set(model_cards())
    assert all(c["hyperparameters"] == model_cards()[c["name"]].space.names for c in listed)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "hyperpilot 0.1.0"
    assert any(line.startswith("optuna ") for line in lines) and any(line.startswith("scikit-learn ") for line in lines)
    assert any(line.startswith("torch ") for line in lines)


def test_every_hyperpilot_warning_is_one_line_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    def solve(self: Assistant, task: Task) -> Any:
        logging.getLogger("hyperpilot.data").warning("dropped column 'id': a row index\n(unique, monotonic)")
        logging.getLogger("hyperpilot.core.loop").warning("feature 'leak' alone predicts the target [0.99]")
        logging.getLogger("hyperpilot.data").info("not shown")
        raise Captured("stop")

    monkeypatch.setattr(Assistant, "solve", solve)
    result = invoke("solve", "--data", "sklearn:iris")
    lines = result.stderr.splitlines()
    assert "WARNING: dropped column 'id': a row index (unique, monotonic)" in lines
    assert "WARNING: feature 'leak' alone predicts the target [0.99]" in lines
    assert "not shown" not in result.output and result.stdout == ""


def test_flags_mean_one_thing_everywhere() -> None:
    def commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, cmd in group.commands.items():
            yield (*prefix, name), cmd
            if hasattr(cmd, "commands"):
                yield from commands(cmd, (*prefix, name))

    meaning: dict[str, set[str]] = {}
    for _, cmd in commands(typer.main.get_command(app)):  # type: ignore[arg-type]
        for param in cmd.params:
            for flag in (*param.opts, *param.secondary_opts):
                meaning.setdefault(flag, set()).add(param.name)
    assert meaning["-n"] == {"trials"}
    assert all(len(names) == 1 for names in meaning.values()), meaning
    for command in (["solve"], ["resume"], ["studies", "list"], ["studies", "show"], ["models"]):
        assert "--json" in invoke(*command, "--help").stdout


def test_the_package_names_load_on_first_use() -> None:
    import hyperpilot

    assert set(hyperpilot.__all__) <= set(dir(hyperpilot))
    for name in hyperpilot.__all__:
        assert getattr(hyperpilot, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hyperpilot.nope  # noqa: B018


LIGHT = """
import json, sys
from hyperpilot.cli import main
sys.argv = ["hyperpilot", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print("HEAVY=" + json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


@pytest.mark.parametrize("args", [[], ["--help"], ["solve", "--help"], ["resume", "--help"], ["memory", "--help"],
                                  ["solve", "--trials", "x"], ["solve", "--data", "sklearn:iris", "--time", "soon"],
                                  ["--version"]], ids=lambda a: " ".join(a) or "bare")
def test_help_and_argument_errors_import_nothing_heavy(args: list[str]) -> None:
    code = textwrap.dedent(LIGHT).replace("{heavy}", repr(HEAVY))
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=120)
    assert "HEAVY=[]" in out.stdout.splitlines(), (out.stdout[-2000:], out.stderr[-2000:])


def test_importing_the_cli_imports_nothing_heavy() -> None:
    code = f"import sys, hyperpilot.cli, hyperpilot; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_an_interrupt_names_the_study_to_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    def solve(self: Assistant, task: Task) -> Any:
        assert self.on_start is not None
        self.on_start(task.resolved("multiclass"))
        raise KeyboardInterrupt

    monkeypatch.setattr(Assistant, "solve", solve)
    result = invoke("solve", "--data", "sklearn:iris", "--study", "cut-short")
    assert result.exit_code == 130
    assert "interrupted; the study is saved: `hyperpilot resume cut-short` continues it" in result.stderr.splitlines()
