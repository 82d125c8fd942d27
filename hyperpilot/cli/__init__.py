"""The `hyperpilot` command line (typer + rich).

    commands.py   the typer app: solve, resume, demo, models, doctor, studies …, memory …
    options.py    the shared options, `--time`, and the rule that options given win
    output.py     results on stdout (or `--json`), progress and notices on stderr

Importing it is cheap: optuna, scikit-learn, pandas and the agent load when a command runs,
so `hyperpilot --help` and argument errors answer at once."""

from hyperpilot.cli.commands import _executor, app, main

__all__ = ["_executor", "app", "main"]
