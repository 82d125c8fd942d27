"""The `hyperpilot` command line (typer + rich)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hyperpilot.agent import Assistant, Result
from hyperpilot.agent.request import task_from_text
from hyperpilot.core.types import TrialRecord
from hyperpilot.errors import HyperpilotError
from hyperpilot.memory.cli import memory_app

app = typer.Typer(
    help="hyperpilot: tune a model on your data. Bayesian optimisation in control, an LLM as adviser.",
    no_args_is_help=True,
    add_completion=False,
)
studies_app = typer.Typer(help="List and inspect stored studies.", no_args_is_help=True)
app.add_typer(studies_app, name="studies")
app.add_typer(memory_app, name="memory")
console = Console()
err = Console(stderr=True)


def _run(assistant_call: Callable[[Assistant], Result], n_total: int, llm: object = None,
         llm_rate: Optional[float] = None, memory: bool = True, executor: object = None, workers: int = 1) -> Result:
    table = Table("#", "source", "model", "value", "best", "s", "note", title="trials", expand=False)
    with Progress(
        TextColumn("[bold]tuning"), BarColumn(), MofNCompleteColumn(), TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:
        bar = progress.add_task("trials", total=n_total, best="-")

        def on_trial(t: TrialRecord) -> None:
            best = "-" if t.best_value is None else f"{t.best_value:.4f}"
            value = ("pruned" if t.state == "PRUNED" else "failed") if t.value is None else f"{t.value:.4f}"
            progress.update(bar, completed=t.n_done, total=t.n_total, best=best)
            progress.console.print(
                f"  trial {t.number:>3}  {t.source:<8} {t.model:<24} {value:>10}  best {best}  {t.seconds:5.1f}s"
                + (f"  [red]{t.error[:90]}[/red]" if t.error else "")
            )
            table.add_row(str(t.number), t.source, t.model, value, best, f"{t.seconds:.1f}", t.error[:60])

        assistant = Assistant(on_trial=on_trial, llm=llm, llm_rate=llm_rate, memory=memory,  # type: ignore[arg-type]
                              executor=executor, workers=workers)  # type: ignore[arg-type]
        return assistant_call(assistant)


def _show(result: Result) -> None:
    console.print(f"\n[bold green]best[/bold green] {result.summary()}")
    console.print(f"model:  {result.model_path}")
    console.print(f"report: {result.report_path}")
    console.print(f"study:  {result.study_name}  (resume with `hyperpilot resume {result.study_name}`)")
    _show_llm(result.study_name)


def _show_llm(study_name: str) -> None:
    from hyperpilot import studies
    from hyperpilot.report import accounting, accounting_rows

    info = accounting(studies.load_study(study_name))
    if info is None:
        return
    table = Table("LLM planner", "", show_header=False, title="LLM planner", expand=False)
    for label, value in accounting_rows(info):
        table.add_row(label, value)
    console.print(table)


LLM_HELP = ("Planner LLM: embedded (SmolLM2-135M in this process, the default), none (pure BO), "
            "openai:MODEL (key: OPENAI_API_KEY), or http://HOST:PORT/v1#MODEL (any OpenAI-compatible server; "
            "key: HYPERPILOT_API_KEY, never OPENAI_API_KEY; no key over plain http to another machine).")
LLM_KEY_ENV_HELP = ("Name of the environment variable holding the --llm server's API key (e.g. VLLM_API_KEY), "
                    "instead of OPENAI_API_KEY / HYPERPILOT_API_KEY.")
NO_MEMORY_HELP = "Neither warm-start from the trial memory nor add this study to it."
NO_SANDBOX_HELP = "Debugging only: run trials in this process, without isolation, limits or timeout."
TRIAL_TIMEOUT_HELP = "Seconds one trial may run; a slower trial is killed (whole process tree) and recorded as failed."
TRIAL_MEMORY_HELP = ("MiB of memory one trial may use (its whole process tree); default $HYPERPILOT_TRIAL_MEMORY_MB, "
                     "else 75% of the memory available at start, at least 2048.")
RATE_HELP = "Share of BO steps the LLM replaces (0-1); default set by benchmark (docs/benchmarks.md)."

# The agent options that solve, resume and demo share, declared once
LlmOption = Annotated[Optional[str], typer.Option("--llm", envvar="HYPERPILOT_LLM", help=LLM_HELP)]
RateOption = Annotated[Optional[float], typer.Option("--llm-rate", help=RATE_HELP)]
LlmKeyEnvOption = Annotated[Optional[str], typer.Option("--llm-key-env", envvar="HYPERPILOT_LLM_KEY_ENV",
                                                        metavar="NAME", help=LLM_KEY_ENV_HELP)]
NoMemoryOption = Annotated[bool, typer.Option("--no-memory", help=NO_MEMORY_HELP)]
TrialTimeoutOption = Annotated[Optional[float], typer.Option("--trial-timeout", help=TRIAL_TIMEOUT_HELP)]
TrialMemoryOption = Annotated[Optional[int], typer.Option("--trial-memory", min=1, metavar="MIB", help=TRIAL_MEMORY_HELP)]
NoSandboxOption = Annotated[bool, typer.Option("--no-sandbox", help=NO_SANDBOX_HELP)]
WorkersOption = Annotated[int, typer.Option("--workers", "-w", min=1, help="Trials to run at once (each in its own sandboxed worker).")]
# solve's options -> Task fields, for overriding what a natural-language request says
_OVERRIDES = {"data": "data", "target": "target", "model": "models", "metric": "metric", "task_type": "task_type",
              "trials": "n_trials", "timeout": "timeout", "seed": "seed", "folds": "cv_folds", "sampler": "sampler",
              "study": "study_name", "encoding": "encoding"}


class _Warnings(logging.Handler):
    """Shows the sandbox's warnings (a layer weaker than bubblewrap) on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[bold yellow]WARNING:[/bold yellow] {escape(record.getMessage())}", soft_wrap=True)


_WARNINGS = _Warnings(logging.WARNING)


def _executor(no_sandbox: bool, trial_timeout: Optional[float], workers: int = 1, trial_memory: Optional[int] = None) -> object:
    """The trial executor for the CLI: the sandbox, or (loudly) none."""
    from hyperpilot.sandbox import InProcessExecutor, SandboxExecutor, default_limits

    if _WARNINGS not in logging.getLogger("hyperpilot.sandbox").handlers:
        logging.getLogger("hyperpilot.sandbox").addHandler(_WARNINGS)

    if trial_timeout is not None and trial_timeout <= 0:
        raise HyperpilotError(f"--trial-timeout must be > 0 seconds, got {trial_timeout:g}")
    if no_sandbox:
        err.print("[bold red]WARNING: the sandbox is OFF (--no-sandbox)[/bold red]: trials run inside this process "
                  "with its environment and files, no resource caps" + (" and no --trial-timeout" if trial_timeout else "")
                  + "; custom_code programs still run sandboxed. Use this for debugging only.", soft_wrap=True)
        return InProcessExecutor(workers=workers)
    limits = None if trial_memory is None else default_limits(memory_mb=trial_memory)
    return SandboxExecutor(limits, trial_timeout=trial_timeout, workers=workers)


def _planner(llm: Optional[str], key_env: Optional[str]) -> object:
    """The planner LLM of --llm and --llm-key-env ("none" for none); a bad key setup fails here."""
    from hyperpilot.agent.llm import default_spec, resolve_llm

    return resolve_llm(llm or default_spec(), key_env=key_env) or "none"


def _fail(e: HyperpilotError) -> None:
    # one line however long (no wrapping), and brackets in the message are text, not markup
    err.print(f"[bold red]error:[/bold red] {escape(str(e))}", soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def solve(
    ctx: typer.Context,
    request: Optional[str] = typer.Argument(None, help='A request in words, e.g. "tune a random forest on data.csv to predict churn, maximise F1, 40 trials"; options given as well win.'),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="CSV or Parquet file, or a built-in: sklearn:breast_cancer, sklearn:iris, sklearn:wine, sklearn:digits, sklearn:diabetes."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target column (may be left out for sklearn: datasets, whose target is 'target')."),
    model: list[str] = typer.Option([], "--model", "-m", help="Model card to tune (repeat to compare models); `hyperpilot models` lists them. Default: hist_gradient_boosting."),
    metric: Optional[str] = typer.Option(None, "--metric", help="accuracy, balanced_accuracy, f1, roc_auc, log_loss, rmse, mse, mae or r2. Default: accuracy / rmse."),
    task_type: Optional[str] = typer.Option(None, "--task", help="binary, multiclass or regression (inferred from the target when left out)."),
    trials: int = typer.Option(20, "--trials", "-n", help="Total trials in the study (resumed ones count)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting new trials after this many seconds."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the folds, the models and the sampler."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    sampler: str = typer.Option("tpe", "--sampler", help="BO engine: tpe (multivariate TPE), gp (Gaussian process), random, qmc, cmaes (needs the cmaes package) or nsga2."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name; an existing name resumes that study. Default: a new name per run."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Text encoding of a CSV file (default utf-8), e.g. latin-1 or cp1252."),
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    llm_rate: RateOption = None,
    no_memory: NoMemoryOption = False,
    trial_timeout: TrialTimeoutOption = None,
    trial_memory: TrialMemoryOption = None,
    no_sandbox: NoSandboxOption = False,
    workers: WorkersOption = 1,
) -> None:
    """Tune MODEL(s) on DATA for METRIC and save the best model with a report."""
    from click.core import ParameterSource

    from hyperpilot.agent.llm import default_spec, resolve_llm
    from hyperpilot.task import Task

    try:
        planner_llm = resolve_llm(llm or default_spec(), key_env=llm_key_env)
        if request:
            options = {"data": data, "target": target, "model": model, "metric": metric, "task_type": task_type,
                       "trials": trials, "timeout": timeout, "seed": seed, "folds": folds, "sampler": sampler, "study": study,
                       "encoding": encoding}
            given = {_OVERRIDES[k]: v for k, v in options.items() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
            task = task_from_text(request, llm=planner_llm, **given)
        elif data is None:
            raise HyperpilotError('give --data FILE (or a request in words: hyperpilot solve "tune svm on sklearn:wine")')
        else:
            task = Task(
                data=data, target=target, models=model, metric=metric, task_type=task_type,  # type: ignore[arg-type]
                n_trials=trials, timeout=timeout, seed=seed, cv_folds=folds, sampler=sampler, study_name=study,
                encoding=encoding,
            )
        _show(_run(lambda a: a.solve(task), task.n_trials, llm=planner_llm or "none", llm_rate=llm_rate,
                     memory=not no_memory, executor=_executor(no_sandbox, trial_timeout, workers, trial_memory), workers=workers))
    except HyperpilotError as e:
        _fail(e)
    except ValueError as e:  # pydantic range checks on the options
        _fail(HyperpilotError(str(e).splitlines()[-1].strip()))


@app.command()
def resume(
    name: str = typer.Argument(..., help="Study name (see `hyperpilot studies list`)."),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", help="New total budget; default: the study's own."),
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    llm_rate: RateOption = None,
    no_memory: NoMemoryOption = False,
    trial_timeout: TrialTimeoutOption = None,
    trial_memory: TrialMemoryOption = None,
    no_sandbox: NoSandboxOption = False,
    workers: WorkersOption = 1,
) -> None:
    """Continue a study by name, e.g. after the process was killed. Completed trials are kept."""
    try:
        _show(_run(lambda a: a.resume(name, trials), trials or 0, llm=_planner(llm, llm_key_env), llm_rate=llm_rate,
                   memory=not no_memory,
                   executor=_executor(no_sandbox, trial_timeout, workers, trial_memory), workers=workers))
    except HyperpilotError as e:
        _fail(e)


@app.command()
def demo(
    trials: int = typer.Option(15, "--trials", "-n", help="Trials to run."),
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    llm_rate: RateOption = None,
    no_memory: NoMemoryOption = False,
    trial_timeout: TrialTimeoutOption = None,
    trial_memory: TrialMemoryOption = None,
    no_sandbox: NoSandboxOption = False,
    workers: WorkersOption = 1,
) -> None:
    """A short solve on scikit-learn's breast-cancer data; needs no arguments."""
    from hyperpilot.task import Task

    console.print("[bold]demo:[/bold] tuning a histogram gradient-boosting classifier on sklearn:breast_cancer (ROC AUC)")
    try:
        task = Task(data="sklearn:breast_cancer", models=["hist_gradient_boosting"], metric="roc_auc", n_trials=trials)
        _show(_run(lambda a: a.solve(task), trials, llm=_planner(llm, llm_key_env), llm_rate=llm_rate, memory=not no_memory,
                   executor=_executor(no_sandbox, trial_timeout, workers, trial_memory), workers=workers))
    except HyperpilotError as e:
        _fail(e)


@app.command()
def doctor() -> None:
    """Which sandbox layers are active on this machine, and what is missing."""
    from hyperpilot.sandbox import layers

    table = Table("layer", "active", "detail", title="sandbox", expand=False)
    for check in layers.doctor():
        table.add_row(check.name, "[green]yes[/green]" if check.active else "[red]no[/red]", escape(check.detail))
    console.print(table)


@app.command()
def models() -> None:
    """List the bundled model cards and their search spaces."""
    from hyperpilot.cards import model_cards

    table = Table("name", "family", "tasks", "hyperparameters", title="model cards")
    for card in model_cards().values():
        table.add_row(card.name, card.family, ", ".join(card.task_types), ", ".join(card.space.names))
    console.print(table)


@studies_app.command("list")
def studies_list() -> None:
    """Every stored study with its best value and trial count."""
    from hyperpilot import studies

    table = Table("study", "started", "trials", "best", "direction", title=f"studies in {studies.home()}")
    for s in studies.list_studies():
        best = "-" if s.best_trial is None else f"{s.best_trial.value:.4f}"
        started = s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "-"
        table.add_row(s.study_name, started, str(s.n_trials), best, s.direction.name.lower())
    console.print(table)


@studies_app.command("show")
def studies_show(name: str = typer.Argument(..., help="Study name.")) -> None:
    """The task and every trial of one study."""
    from hyperpilot import studies

    try:
        study = studies.load_study(name)
    except HyperpilotError as e:
        _fail(e)
    console.print_json(json.dumps(study.user_attrs.get("task", {})))
    table = Table("#", "state", "source", "model", "value", "s", "error")
    for r in studies.trial_table(study).itertuples():
        value = "" if r.value is None or r.value != r.value else f"{r.value:.4f}"
        seconds = "" if r.seconds is None or r.seconds != r.seconds else f"{r.seconds:.1f}"
        table.add_row(str(r.number), r.state, r.source, r.model, value, seconds, str(r.error)[:60])
    console.print(table)
    report = studies.study_dir(name) / "report.md"
    if report.exists():
        console.print(f"report: {report}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; the study is saved — `hyperpilot resume NAME` continues it")
        sys.exit(130)


if __name__ == "__main__":
    main()
