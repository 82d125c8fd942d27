"""The typer app: `hyperpilot solve | resume | demo | models | doctor | studies … | memory …`.

Every option goes through one path: `options.given` keeps what the command line itself
gave; `options.task_fields` turns it into Task fields, which win over what a request says
(`solve`) or what the study stored (`resume`); `options.run_settings` does the same for how
the run runs (LLM, rate, sampler, memory, workers, sandbox, trial limits), which a study
stores (`Assistant.run_settings`) so that `resume` runs it the same way."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape

from hyperpilot.cli.chat import chat
from hyperpilot.cli.options import (
    CodeOption,
    JsonOption,
    LlmKeyEnvOption,
    LlmOption,
    MemoryOption,
    RateOption,
    RayOption,
    SamplerOption,
    SandboxOption,
    StorageOption,
    TimeOption,
    TimeoutAlias,
    TrialMemoryOption,
    TrialsOption,
    TrialTimeoutOption,
    WorkersOption,
    given,
    run_settings,
    task_fields,
)
from hyperpilot.cli.output import (
    RunProgress,
    emit_json,
    err,
    fail,
    line,
    out,
    result_json,
    show_notices,
    show_result,
    table,
)
from hyperpilot.cli.serve import serve
from hyperpilot.errors import HyperpilotError
from hyperpilot.memory.cli import memory_app

if TYPE_CHECKING:
    from hyperpilot.agent import Assistant
    from hyperpilot.core.types import Result

app = typer.Typer(
    help="hyperpilot: tune a model on your data. Bayesian optimisation in control, an LLM as adviser.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help and usage errors: wrapped at words, never cut with '…'
)
studies_app = typer.Typer(help="List and inspect stored studies.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(studies_app, name="studies")
app.add_typer(memory_app, name="memory")
app.command("chat", short_help="A conversation: say what to tune, answer, confirm, ask follow-ups.")(chat)
app.command("serve", short_help="A local web chat page: upload a table, tune, see progress and the plot.")(serve)


def _version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from hyperpilot import __version__

    typer.echo(f"hyperpilot {__version__}")
    for dist in ("optuna", "scikit-learn", "torch"):
        try:
            typer.echo(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            typer.echo(f"{dist} (not installed)")
    typer.echo(f"python {platform.python_version()}")
    raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the versions of hyperpilot, optuna, scikit-learn, torch and python.")) -> None:
    """hyperpilot: tune a model on your data."""


@contextmanager
def _one_line() -> Iterator[None]:
    """A user's mistake ends the command with one error line (exit 2), never a traceback."""
    try:
        yield
    except HyperpilotError as e:
        fail(str(e))
        raise typer.Exit(2) from None


def _executor(no_sandbox: bool, trial_timeout: Optional[float], workers: int = 1, trial_memory: Optional[int] = None,
              ray: Optional[str] = None) -> Any:
    """The trial executor for the CLI: the sandbox, Ray (connected now: a bad address is one line), or (loudly) none."""
    from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor, default_limits

    if trial_timeout is not None and trial_timeout <= 0:
        raise HyperpilotError(f"--trial-timeout must be > 0 seconds, got {trial_timeout:g}")
    if ray and ray != "none":
        from hyperpilot.sandbox.ray_executor import RayExecutor

        if no_sandbox:
            raise HyperpilotError("--ray runs every trial sandboxed on a Ray worker; leave out --no-sandbox")
        executor = RayExecutor(ray, workers=workers, trial_timeout=trial_timeout,
                               limits=None if trial_memory is None else default_limits(memory_mb=trial_memory))
        executor.connect()
        return executor
    if no_sandbox:
        line("[bold red]WARNING: the sandbox is OFF (--no-sandbox)[/bold red]: trials run inside this process "
             "with its environment and files, no resource caps" + (" and no --trial-timeout" if trial_timeout else "")
             + "; custom_code programs still run sandboxed. Use this for debugging only.", err)
        return InProcessExecutor(workers=workers)
    limits = None if trial_memory is None else default_limits(memory_mb=trial_memory)
    return SandboxExecutor(limits, trial_timeout=trial_timeout, workers=workers)


def _planner(spec: Optional[str], key_env: Optional[str]) -> Any:
    """The planner LLM of a spec (default `$HYPERPILOT_LLM`, else embedded); None for none.
    A bad key setup fails here, before any study."""
    from hyperpilot.agent.llm import default_spec, resolve_llm

    return resolve_llm(spec or default_spec(), key_env=key_env)


def _settings(ctx: typer.Context, stored: dict[str, Any], **values: Any) -> dict[str, Any]:
    """This run's settings: the options given on the command line, else `stored`, else defaults."""
    options = given(ctx, values)
    if "sandbox" in options:
        options["no_sandbox"] = not options.pop("sandbox")
    return run_settings(options, stored)


def _run(call: Callable[[Assistant], Result], settings: dict[str, Any], key_env: Optional[str], as_json: bool,
         planner: Any = None, resolved: bool = False, storage: Optional[str] = None) -> None:
    """Run `call` on an Assistant built from `settings`, showing progress on stderr, then the result."""
    from hyperpilot.agent import Assistant

    show_notices()
    llm = planner if resolved else _planner(settings["llm"], key_env)
    executor = _executor(settings["no_sandbox"], settings["trial_timeout"], settings["workers"], settings["trial_memory"],
                         settings["ray"])
    workers = settings["workers"]
    warming = ("starting the first trial" if settings["no_sandbox"]
               else f"starting {workers} sandbox worker{'s' if workers > 1 else ''}" + (" on Ray" if settings["ray"] not in (None, "none") else "")) \
        + (" and the LLM" if llm else "")
    study: list[str] = []  # its name, once known (for the interrupt message)
    try:
        with RunProgress(warming) as progress:
            def on_start(task: Any) -> None:
                study.append(str(task.study_name))
                progress.on_start(task)

            assistant = Assistant(on_trial=progress.on_trial, on_start=on_start, llm=llm or "none", workers=workers,
                                  llm_rate=settings["llm_rate"], memory=settings["memory"], executor=executor,
                                  sampler=settings["sampler"], storage=storage)
            result = call(assistant)
    except KeyboardInterrupt:
        line(f"interrupted; the study is saved: `hyperpilot resume {escape(study[0]) if study else 'NAME'}` continues it", err)
        raise typer.Exit(130) from None
    from hyperpilot import studies
    from hyperpilot.report import accounting, accounting_rows, program_rows, program_summary

    stored = studies.load_study(result.study_name, storage)
    info, programs = accounting(stored), program_summary(stored)
    if as_json:
        emit_json({**result_json(result), "llm": info, "programs": programs})
        return
    show_result(result)
    if info is not None:
        table("LLM planner", ["", "value"], accounting_rows(info), wrap=["value"])
    if programs is not None:
        table("programs (--code)", ["", "value"], program_rows(programs), wrap=["value"])
        if programs["best"]:
            head = Path(programs["best"]["file"]).read_text(encoding="utf-8").splitlines()[:8]
            line("best program, first lines:\n" + escape("\n".join(f"  {h}" for h in head)))


@app.command(short_help="Tune models on a table (options, or a request in words); save the best with a report.")
def solve(
    ctx: typer.Context,
    request: Optional[str] = typer.Argument(None, help='A request in words, e.g. "tune a random forest on data.csv to predict churn, maximise F1, 40 trials"; options given as well win.'),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="CSV or Parquet file, or a built-in: sklearn:breast_cancer, sklearn:iris, sklearn:wine, sklearn:digits, sklearn:diabetes."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target column (may be left out for sklearn: datasets, whose target is 'target')."),
    model: list[str] = typer.Option([], "--model", "-m", help="Model card to tune (repeat to compare models); `hyperpilot models` lists them. Default: hist_gradient_boosting, extra_trees and logistic_regression (ridge for regression)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="accuracy, balanced_accuracy, f1, precision, recall, roc_auc, log_loss, rmse, mse, mae or r2 (common names such as AUC or R² work too). Default: accuracy / rmse."),
    task_type: Optional[str] = typer.Option(None, "--task", help="binary, multiclass or regression (inferred from the target when left out)."),
    trials: TrialsOption = None,
    time: TimeOption = None,
    timeout: TimeoutAlias = None,
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the split, the folds, the models and the sampler (default 0)."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Cross-validation folds (default 5)."),
    validation: Optional[str] = typer.Option(None, "--validation", metavar="auto|cv|holdout", help="How a trial is scored: cv (every fold), holdout (the first fold only: --folds times cheaper) or auto (default: CV, a holdout when --time is short for the table's size, FLAML's rule)."),
    sampler: SamplerOption = None,
    study: Optional[str] = typer.Option(None, "--study", help="Study name; an existing name resumes that study. Default: a new name per run."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Text encoding of a CSV file (default utf-8), e.g. latin-1 or cp1252."),
    drop: list[str] = typer.Option([], "--drop", metavar="COLUMN", help="A column no model may see, e.g. an ID or a leak (repeatable)."),
    text_column: Optional[str] = typer.Option(None, "--text-column", metavar="COLUMN", help="The column of free text the lora_text model reads."),
    base_model: Optional[str] = typer.Option(None, "--base-model", metavar="FOLDER", help="A local pretrained model folder for lora_text (default: the bundled all-MiniLM-L6-v2; never downloaded)."),
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    llm_rate: RateOption = None,
    memory: MemoryOption = None,
    trial_timeout: TrialTimeoutOption = None,
    trial_memory: TrialMemoryOption = None,
    sandbox: SandboxOption = None,
    workers: WorkersOption = None,
    storage: StorageOption = None,
    code: CodeOption = False,
    ray: RayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tune MODEL(s) on DATA for METRIC and save the best model with a report."""
    with _one_line():
        fields = task_fields(given(ctx, {
            "data": data, "target": target, "model": model, "metric": metric, "task_type": task_type, "trials": trials,
            "timeout": timeout, "time": time, "seed": seed, "folds": folds, "validation": validation, "sampler": sampler,
            "study": study, "encoding": encoding, "drop": drop, "text_column": text_column, "base_model": base_model}))
        if not request and "data" not in fields:
            raise HyperpilotError('give --data FILE (or a request in words: hyperpilot solve "tune svm on sklearn:wine")')
        settings = _settings(ctx, {}, llm=llm, llm_rate=llm_rate, memory=memory, workers=workers,
                             trial_timeout=trial_timeout, trial_memory=trial_memory, sandbox=sandbox, ray=ray)
        from hyperpilot.agent.request import task_from_text
        from hyperpilot.task import Task

        planner = _planner(settings["llm"], llm_key_env)
        task = task_from_text(request, llm=planner, **fields) if request else Task(**fields)
        if code:
            if planner is None:
                raise HyperpilotError("--code needs an LLM to write the programs: give --llm embedded, openai:MODEL "
                                      "or http://HOST:PORT/v1#MODEL (it is 'none')")
            task = task.with_code()
        _run(lambda a: a.solve(task), settings, llm_key_env, as_json, planner, resolved=True, storage=storage)


@app.command(short_help="Continue a study by name, as it last ran unless options say otherwise.")
def resume(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Study name (see `hyperpilot studies list`)."),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", help="New total budget of trials (default: the study's own; no cap with --time alone)."),
    time: TimeOption = None,
    timeout: TimeoutAlias = None,
    sampler: SamplerOption = None,
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    llm_rate: RateOption = None,
    memory: MemoryOption = None,
    trial_timeout: TrialTimeoutOption = None,
    trial_memory: TrialMemoryOption = None,
    sandbox: SandboxOption = None,
    workers: WorkersOption = None,
    storage: StorageOption = None,
    ray: RayOption = None,
    as_json: JsonOption = False,
) -> None:
    """Continue a study by name, e.g. after the process was killed; completed trials are kept.

    It runs as the study last ran (LLM, sampler, memory, workers, sandbox, trial limits)
    unless options given here say otherwise."""
    from hyperpilot import studies

    with _one_line():
        fields = task_fields(given(ctx, {"trials": trials, "timeout": timeout, "time": time}))
        new_llm = bool(given(ctx, {"llm": llm}))  # checked (key set-up) before the study is touched
        planner = _planner(llm, llm_key_env) if new_llm else None
        study = studies.load_study(name, storage)
        task = studies.stored_task(study)
        if fields:
            task = task.updated(**fields)
        settings = _settings(ctx, studies.run_settings(study), llm=llm, llm_rate=llm_rate, sampler=sampler, memory=memory,
                             workers=workers, trial_timeout=trial_timeout, trial_memory=trial_memory, sandbox=sandbox, ray=ray)
        _run(lambda a: a.solve(task), settings, llm_key_env, as_json, planner, resolved=new_llm, storage=storage)


@app.command(short_help="A short solve on a built-in dataset; needs no arguments.")
def demo(
    ctx: typer.Context,
    trials: Optional[int] = typer.Option(None, "--trials", "-n", help="Trials to run (default 15, or no cap with --time)."),
    time: TimeOption = None,
    timeout: TimeoutAlias = None,
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    llm_rate: RateOption = None,
    memory: MemoryOption = None,
    trial_timeout: TrialTimeoutOption = None,
    trial_memory: TrialMemoryOption = None,
    sandbox: SandboxOption = None,
    workers: WorkersOption = None,
) -> None:
    """A short solve on scikit-learn's breast-cancer data; needs no arguments."""
    from hyperpilot.task import Task

    line("[bold]demo:[/bold] tuning a histogram gradient-boosting classifier on sklearn:breast_cancer (ROC AUC)", err)
    with _one_line():
        fields = task_fields(given(ctx, {"trials": trials, "timeout": timeout, "time": time}))
        task = Task(**{"data": "sklearn:breast_cancer", "models": ["hist_gradient_boosting"], "metric": "roc_auc",
                       "n_trials": 15, **fields})
        settings = _settings(ctx, {}, llm=llm, llm_rate=llm_rate, memory=memory, workers=workers,
                             trial_timeout=trial_timeout, trial_memory=trial_memory, sandbox=sandbox)
        _run(lambda a: a.solve(task), settings, llm_key_env, False)


@app.command(short_help="Which sandbox layers are active here, and what is missing.")
def doctor() -> None:
    """Which sandbox layers are active on this machine, and what is missing."""
    from hyperpilot.sandbox import layers

    table("sandbox", ["layer", "active", "detail"],
          [(c.name, "yes" if c.active else "no", c.detail) for c in layers.doctor()], wrap=["layer", "detail"])


@app.command()
def models(as_json: JsonOption = False) -> None:
    """List the bundled model cards and their search spaces."""
    from hyperpilot.tools.models import ListModelsArgs, list_models
    from hyperpilot.tools.runtime import Runtime

    cards = list_models(ListModelsArgs(), Runtime())["models"]  # the agent's tool: one implementation
    if as_json:
        emit_json(cards)
        return
    table("model cards", ["name", "family", "tasks", "hyperparameters"],
          [(c["name"], c["family"], ", ".join(c["tasks"]), ", ".join(c["hyperparameters"])) for c in cards],
          wrap=["tasks", "hyperparameters"])


@studies_app.command("list")
def studies_list(storage: StorageOption = None, as_json: JsonOption = False) -> None:
    """Every stored study with its best value and trial count."""
    from hyperpilot import studies

    with _one_line():
        rows = [{"study": s.study_name, "started": s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else None,
                 "trials": s.n_trials, "best": None if s.best_trial is None else s.best_trial.value,
                 "direction": s.direction.name.lower()} for s in studies.list_studies(storage)]
        if as_json:
            emit_json(rows)
            return
        table(f"studies in {studies.describe(storage)}", ["study", "started", "trials", "best", "direction"],
              [(r["study"], r["started"] or "-", r["trials"], "-" if r["best"] is None else f"{r['best']:.4f}", r["direction"])
               for r in rows])


def _number(value: Any, digits: int) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"


@studies_app.command("show")
def studies_show(name: str = typer.Argument(..., help="Study name."), storage: StorageOption = None,
                 as_json: JsonOption = False) -> None:
    """The task, the run settings and every trial of one study."""
    from hyperpilot import studies

    with _one_line():
        study = studies.load_study(name, storage)
        frame = studies.trial_table(study)
        report = studies.study_dir(name) / "report.md"
        if as_json:
            emit_json({"study": name, "task": study.user_attrs.get("task", {}), "run": studies.run_settings(study),
                       "trials": json.loads(frame.to_json(orient="records")),
                       "report": str(report) if report.exists() else None})
            return
        out.print_json(json.dumps(study.user_attrs.get("task", {})))
        if studies.run_settings(study):
            line("run: " + escape(json.dumps(studies.run_settings(study))))
        table(f"trials of {name}", ["#", "state", "source", "model", "value", "±", "s", "config", "error"],
              [(r.number, r.state, r.source, r.model, _number(r.value, 4), _number(getattr(r, "cv_std", None), 4),
                _number(r.seconds, 1), json.dumps(r.config) if r.config else "", r.error or "") for r in frame.itertuples()],
              wrap=["config", "error"])
        if report.exists():
            line(f"report: {escape(str(report))}")


def main() -> None:
    app()
