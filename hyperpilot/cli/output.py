"""What the command line prints: results on stdout (text, or one JSON document with
`--json`), progress and notices on stderr. Free text is printed without rich's wrapping
(`soft_wrap`), so a path, a study name or the resume hint never breaks mid-word when piped
or at 80 columns; a table whose names would not fit becomes a plain list.

Cheap to import: rich and the standard library only."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn
from rich.progress import Task as Bar
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from hyperpilot.core.types import Result, TrialRecord
    from hyperpilot.task import Task

out = Console(highlight=False)  # results
err = Console(stderr=True, highlight=False)  # progress, notices, errors


def line(text: str, console: Console = out) -> None:
    """One line of rich markup, never wrapped by rich (a terminal may still wrap it, whole)."""
    console.print(text, soft_wrap=True)


def emit_json(value: Any) -> None:
    """One JSON document on stdout (non-finite numbers as null), nothing else."""
    print(json.dumps(_finite(value), indent=2, default=str), flush=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, wrap: Sequence[str] = ()) -> None:
    """A table on stdout whose cells are never cut (no `…`): the `wrap` columns may wrap at
    spaces, the others (names to type next, numbers) never do; when that cannot fit the
    terminal, a plain list instead, one row per block with the first column on its own line."""
    cells = [[str(c) for c in r] for r in rows]
    longest = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    words = [max([len(h), *(len(w) for r in cells for w in r[i].split())]) for i, h in enumerate(headers)]
    free = out.width - 3 * len(headers) - 1 - sum(n for n, h in zip(longest, headers, strict=True) if h not in wrap)
    wrapping = [i for i, h in enumerate(headers) if h in wrap]
    spare = free - sum(words[i] for i in wrapping)
    line(f"[bold]{escape(title)}[/bold]")  # a title may hold a path: a line of its own, never wrapped
    if spare >= 0:
        # each wrapping column gets its longest word, and a share of the rest by how much more it could use
        want = {i: longest[i] - words[i] for i in wrapping}
        share = {i: want[i] * spare // max(1, sum(want.values())) for i in wrapping}
        grid = Table(*headers, expand=False)
        for i, column in enumerate(grid.columns):
            column.no_wrap = i not in share
            column.width = words[i] + min(want[i], share[i]) if i in share else None
        for r in cells:
            grid.add_row(*map(escape, r))
        out.print(grid)
        return
    for r in cells:
        line(escape(r[0]))
        line("    " + " · ".join(f"{h}: {escape(c)}" for h, c in zip(headers[1:], r[1:], strict=True) if c))


class Notices(logging.Handler):
    """Every WARNING (or worse) of the `hyperpilot` loggers as one line on stderr: ID columns
    dropped, a leak, a weak sandbox, a busy memory."""

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())
        line(f"[bold yellow]WARNING:[/bold yellow] {escape(message)}", err)


NOTICES = Notices(logging.WARNING)


def show_notices() -> None:
    """Show the `hyperpilot` loggers' warnings on stderr (the handler is added once)."""
    logger = logging.getLogger("hyperpilot")
    if NOTICES not in logger.handlers:
        logger.addHandler(NOTICES)


def fail(message: str) -> None:
    """The one error line on stderr (brackets are text, not markup)."""
    line(f"[bold red]error:[/bold red] {escape(message)}", err)


def clock(seconds: float) -> str:
    """`1:05:09`, `4:02` or `0:09`."""
    h, rest = divmod(max(0, int(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Budget(ProgressColumn):
    """With a trial cap `M/N` and an ETA; with a time budget only, elapsed / total and the
    time left."""

    def render(self, task: Bar) -> Text:
        f = task.fields
        if f.get("t0") is None:
            return Text("")
        elapsed = time.monotonic() - f["t0"]
        left = None if f["timeout"] is None else max(0.0, f["timeout"] - elapsed)
        if f["n_total"]:
            done = int(task.completed)
            eta = None if not done else elapsed / done * (f["n_total"] - done)
            if left is not None:
                eta = left if eta is None else min(eta, left)
            return Text(f"{done}/{f['n_total']} trials" + ("" if eta is None else f" · ETA {clock(eta)}"))
        if not left:
            return Text(f"{int(task.completed)} trials · time is up: ending the running trials, then the refit")
        return Text(f"{clock(elapsed)} / {clock(f['timeout'])} · {clock(left)} left · {int(task.completed)} trials")


class _Bar(BarColumn):
    """The trials done of the cap, or the time spent of the budget; pulsing until the first trial."""

    def render(self, task: Bar) -> ProgressBar:
        f = task.fields
        if f.get("t0") is None or task.completed == 0 and f["n_total"]:
            return ProgressBar(total=None, width=self.bar_width, pulse=True, animation_time=task.get_time())
        if f["n_total"]:
            return ProgressBar(total=f["n_total"], completed=task.completed, width=self.bar_width)
        return ProgressBar(total=f["timeout"], completed=min(f["timeout"], time.monotonic() - f["t0"]), width=self.bar_width)


class RunProgress:
    """What a run shows on stderr: a status line until the first trial ends (loading the data,
    then starting the sandbox workers and the LLM), then a bar (see `_Budget`); the plan line
    when the task is resolved and one line per finished trial above it."""

    def __init__(self, warming: str) -> None:
        self.warming = warming
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), _Bar(bar_width=30), _Budget(),
                                 TextColumn("best {task.fields[best]}"), console=err, transient=True)
        self.bar = self.progress.add_task("loading the data", total=None, best="-", t0=None, n_total=None, timeout=None)

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_start(self, task: Task) -> None:
        line(f"[bold]plan:[/bold] {escape(task.describe())}", err)
        line(f"study: {escape(str(task.study_name))}", err)
        self.progress.update(self.bar, description=self.warming, t0=time.monotonic(), n_total=task.n_trials,
                             timeout=task.timeout, total=task.n_trials)

    def on_trial(self, t: TrialRecord) -> None:
        best = "-" if t.best_value is None else f"{t.best_value:.4f}"
        value = t.value_text()
        done = t.n_total is not None and t.n_done >= t.n_total
        self.progress.update(self.bar, description="refitting the best" if done else "tuning", completed=t.n_done, best=best)
        note = f"  [red]{escape(t.error[:200])}[/red]" if t.error else ""
        line(f"  trial {t.number:>3}  {t.source:<8} {escape(t.model):<24} {value:>10}  best {best}  {t.seconds:5.1f}s{note}",
             self.progress.console)


def result_json(result: Result) -> dict[str, Any]:
    """What `--json` prints for a finished solve or resume."""
    return {
        "study": result.study_name, "task": json.loads(result.task.model_dump_json()), "best_model": result.best_model,
        "best_config": result.best_config, "cv_score": result.cv_score, "test_score": result.test_score,
        "n_trials": result.n_trials, "n_failed": result.n_failed, "n_pruned": result.n_pruned,
        "wall_seconds": result.wall_seconds, "model_path": str(result.model_path), "report_path": str(result.report_path),
    }


def show_result(result: Result) -> None:
    """The best model, where it was saved and how to resume, on stdout; paths and the study
    name each on their own line, never broken."""
    line(f"\n[bold green]best[/bold green] {escape(result.summary())}")
    line(f"model:  {escape(str(result.model_path))}")
    line(f"report: {escape(str(result.report_path))}")
    line(f"study:  {escape(result.study_name)}")
    line(f"resume: hyperpilot resume {escape(result.study_name)}")
