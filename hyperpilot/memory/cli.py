"""`hyperpilot memory list | show ID | search TEXT | export FILE | import FILE | forget ID`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hyperpilot.errors import HyperpilotError

if TYPE_CHECKING:
    from hyperpilot.memory.store import Memory

memory_app = typer.Typer(help="The trial memory: past studies that warm-start new ones.", no_args_is_help=True)
err = Console(stderr=True)


class _Out:
    """stdout; wide when piped, so ids are never cut (`hyperpilot memory list | grep ...`);
    lines of text are never wrapped by rich, so a path or an id never breaks mid-word."""

    def print(self, *args: object, **kwargs: object) -> None:
        if all(isinstance(a, str) for a in args):
            kwargs.setdefault("soft_wrap", True)
        Console(width=None if sys.stdout.isatty() else 200).print(*args, **kwargs)  # type: ignore[arg-type]


console = _Out()


WAIT = 3.0  # seconds a command waits for a memory in use by another process (a solve ending, say)


def _memory(path: Optional[Path]) -> Memory:
    from hyperpilot.memory.store import Memory

    return Memory(path, wait=WAIT)


def _fail(e: HyperpilotError) -> None:
    err.print(f"[bold red]error:[/bold red] {escape(str(e))}", soft_wrap=True)  # one line, brackets as text
    raise typer.Exit(2)


PathOpt = typer.Option(None, "--path", help="Memory folder (default: HYPERPILOT_HOME/memory).")


def _score(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.4g}"


@memory_app.command("list")
def memory_list(path: Optional[Path] = PathOpt) -> None:
    """Every remembered study: dataset, model, metric, best score and trial count."""
    try:
        with _memory(path).held(create=False) as memory:  # also merges what a busy memory journaled
            n_studies, n_trials = memory.count()
            table = Table("id", "dataset", "model", "metric", "best", "trials", "origin",
                          title=f"{n_studies} studies, {n_trials} trials in {memory.path}")
            table.columns[0].no_wrap = True  # the id is typed next: never cut
            for s in memory.studies():
                table.add_row(s.id, s.dataset, s.model, s.metric, _score(s.best_score), str(s.n_trials), s.origin)
        console.print(table)
    except HyperpilotError as e:
        _fail(e)


@memory_app.command("show")
def memory_show(study_id: str = typer.Argument(..., help="Study id (see `hyperpilot memory list`)."),
                path: Optional[Path] = PathOpt) -> None:
    """One study: its card, meta-features, best config and every trial."""
    try:
        with _memory(path).held(create=False) as memory:
            s = memory.get_study(study_id)
            trials = memory.trials(s.id)
        console.print(f"[bold]{s.id}[/bold]  {s.model} ({s.family}) on {s.dataset}, {s.metric} ({s.direction}), origin {s.origin}")
        console.print(s.card_text)
        console.print("meta-features: " + json.dumps(s.meta_features))
        console.print(f"best {_score(s.best_score)}: {json.dumps(s.best_config)}")
        table = Table("#", "status", "source", "score", "rank", "config")
        for t in trials:
            table.add_row(str(t.number), t.status, t.source, _score(t.score), _score(t.rank), json.dumps(t.config)[:90])
        console.print(table)
    except HyperpilotError as e:
        _fail(e)


@memory_app.command("search")
def memory_search(text: str = typer.Argument(..., help="Words describing a dataset or task."),
                  limit: int = typer.Option(10, "--limit", min=1, help="How many studies."),
                  path: Optional[Path] = PathOpt) -> None:
    """The studies whose dataset card reads most like TEXT."""
    try:
        with _memory(path).held(create=False) as memory:
            found = memory.search(text, limit)
        table = Table("similarity", "id", "dataset", "model", "best")
        table.columns[1].no_wrap = True
        for s, sim in found:
            table.add_row(f"{sim:.3f}", s.id, s.dataset, s.model, _score(s.best_score))
        console.print(table)
    except HyperpilotError as e:
        _fail(e)


@memory_app.command("export")
def memory_export(file: Path = typer.Argument(..., help="JSONL file to write."),
                  study: list[str] = typer.Option([], "--study", help="Only this study id (repeatable)."),
                  path: Optional[Path] = PathOpt) -> None:
    """Write studies and trials as JSON Lines (an export is also a memory pack)."""
    from hyperpilot.memory.packs import export_jsonl

    try:
        n_s, n_t = export_jsonl(_memory(path), file, study or None)
        console.print(f"exported {n_s} studies and {n_t} trials to {file}")
    except HyperpilotError as e:
        _fail(e)


@memory_app.command("import")
def memory_import(file: Path = typer.Argument(..., help="JSONL file: an export or a memory pack."),
                  origin: Optional[str] = typer.Option(None, "--origin", help="Tag the studies with this origin (e.g. the pack name)."),
                  path: Optional[Path] = PathOpt) -> None:
    """Add the studies and trials of FILE; bad lines are reported and skipped, re-imports change nothing."""
    from hyperpilot.memory.packs import import_jsonl

    try:
        report = import_jsonl(_memory(path), file, origin)
    except HyperpilotError as e:
        _fail(e)
        return
    for number, why in report.bad:
        typer.echo(f"{file}:{number}: skipped: {why}", err=True)  # one plain line each, for grep
    console.print(report.summary())


@memory_app.command("forget")
def memory_forget(study_id: str = typer.Argument(..., help="Study id, or an Optuna study name (all its models)."),
                  path: Optional[Path] = PathOpt) -> None:
    """Delete a study and its trials from the memory."""
    try:
        n = _memory(path).forget(study_id)
        console.print(f"forgot {n} study record(s) for '{study_id}'")
    except HyperpilotError as e:
        _fail(e)
