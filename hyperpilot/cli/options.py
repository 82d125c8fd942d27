"""The options of the command line: the ones solve, resume and demo share, `--time`, and
the one rule for every option — what is given on the command line wins over what a request
says, what a stored study says, and the defaults.

Cheap to import: typer and the standard library only."""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

import typer

from hyperpilot.errors import TaskError

LLM_HELP = ("Planner LLM: embedded (SmolLM2-135M in this process, the default), none (pure BO), "
            "openai:MODEL (key: OPENAI_API_KEY), or http://HOST:PORT/v1#MODEL (any OpenAI-compatible server; "
            "key: HYPERPILOT_API_KEY, never OPENAI_API_KEY; no key over plain http to another machine). "
            "resume: default the study's own.")
LLM_KEY_ENV_HELP = ("Name of the environment variable holding the --llm server's API key (e.g. VLLM_API_KEY), "
                    "instead of OPENAI_API_KEY / HYPERPILOT_API_KEY.")
MEMORY_HELP = "--no-memory: neither warm-start from the trial memory nor add this study to it (default: use it)."
SANDBOX_HELP = ("--no-sandbox is for debugging only: trials run in this process, without isolation, limits or "
                "timeout (default: the sandbox).")
TRIAL_TIMEOUT_HELP = "Seconds one trial may run; a slower trial is killed (whole process tree) and recorded as failed."
TRIAL_MEMORY_HELP = ("MiB of memory one trial may use (its whole process tree); default $HYPERPILOT_TRIAL_MEMORY_MB, "
                     "else 75% of the memory available at start, at least 2048.")
RATE_HELP = "Share of BO steps the LLM replaces (0-1); default set by benchmark (docs/benchmarks.md)."
TIME_HELP = ("Time budget: 90s, 10m, 1h, 1h30m or plain seconds, for the search and the refit of the best "
             "model (the report follows); a trial still running at its end is stopped. "
             "Without --trials there is then no trial cap.")
TRIALS_HELP = "Total trials in the study (resumed ones count); default 20, or no cap when --time is given."
JSON_HELP = "Print the result as JSON on stdout (progress and notices go to stderr)."
CODE_HELP = ("Also tune custom_code: the --llm writes its own model programs, which are checked, run in the sandbox "
             "like any trial and repaired at most twice; when it cannot, BO goes on. The result counts them.")

# The agent options that solve, resume and demo share, declared once. None = not given, so
# that `resume` can tell an option given now from the study's stored run settings.
LlmOption = Annotated[Optional[str], typer.Option("--llm", envvar="HYPERPILOT_LLM", help=LLM_HELP)]
RateOption = Annotated[Optional[float], typer.Option("--llm-rate", help=RATE_HELP)]
LlmKeyEnvOption = Annotated[Optional[str], typer.Option("--llm-key-env", envvar="HYPERPILOT_LLM_KEY_ENV",
                                                        metavar="NAME", help=LLM_KEY_ENV_HELP)]
MemoryOption = Annotated[Optional[bool], typer.Option("--memory/--no-memory", show_default=False, help=MEMORY_HELP)]
TrialTimeoutOption = Annotated[Optional[float], typer.Option("--trial-timeout", help=TRIAL_TIMEOUT_HELP)]
TrialMemoryOption = Annotated[Optional[int], typer.Option("--trial-memory", min=1, metavar="MIB", help=TRIAL_MEMORY_HELP)]
SandboxOption = Annotated[Optional[bool], typer.Option("--sandbox/--no-sandbox", show_default=False, help=SANDBOX_HELP)]
WorkersOption = Annotated[Optional[int], typer.Option("--workers", "-w", min=1,
                                                      help="Trials to run at once, each in its own sandboxed worker (default 1).")]
SamplerOption = Annotated[Optional[str], typer.Option(
    "--sampler", help="BO engine: tpe (multivariate TPE, the default), gp (Gaussian process), random, qmc, "
                      "cmaes (needs the cmaes package) or nsga2.")]
TrialsOption = Annotated[Optional[int], typer.Option("--trials", "-n", help=TRIALS_HELP)]
TimeOption = Annotated[Optional[str], typer.Option("--time", metavar="DURATION", help=TIME_HELP)]
TimeoutAlias = Annotated[Optional[str], typer.Option("--timeout", hidden=True, help="Same as --time.")]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
RAY_HELP = ("Run each trial as a Ray task (sandboxed on the Ray worker): auto starts a local Ray on loopback "
            "(or uses $RAY_ADDRESS), HOST:PORT connects to a cluster's head (`ray start --head` there); resume: none runs here instead.")
RayOption = Annotated[Optional[str], typer.Option("--ray", metavar="auto|ADDRESS", help=RAY_HELP)]
CodeOption = Annotated[bool, typer.Option("--code", help=CODE_HELP)]
STORAGE_HELP = ("Where studies live: a database URL (sqlite:///FILE, postgresql://USER@HOST:PORT/DB, …: workers on "
                "several machines can share one --study) or a journal file (journal:PATH, or a .log/.jsonl path); "
                "default $HYPERPILOT_STORAGE, else studies.db under HYPERPILOT_HOME.")
StorageOption = Annotated[Optional[str], typer.Option("--storage", metavar="URL", envvar="HYPERPILOT_STORAGE",
                                                      help=STORAGE_HELP)]

# option name -> the Task field it sets (--timeout: the old name of --time; --time wins when both are given)
TASK_FIELDS = {"data": "data", "target": "target", "model": "models", "metric": "metric", "task_type": "task_type",
               "trials": "n_trials", "timeout": "timeout", "time": "timeout", "seed": "seed", "folds": "cv_folds", "validation": "validation",
               "sampler": "sampler",
               "study": "study_name", "encoding": "encoding", "drop": "drop",
               "text_column": "text_column", "base_model": "base_model"}
# the run settings an Assistant stores with its study (`Assistant.run_settings`) and their defaults
RUN_DEFAULTS: dict[str, Any] = {"llm": None, "llm_rate": None, "sampler": None, "memory": True, "workers": 1,
                                "no_sandbox": False, "trial_timeout": None, "trial_memory": None, "ray": None}

_PART = r"(\d+(?:\.\d*)?|\.\d+)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)"
_UNIT = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `10m`, `1h`, `1h30m`, `1.5h`, `2 min` or plain seconds (`600`)."""
    try:
        seconds = float(text)
    except ValueError:
        if re.fullmatch(rf"(?:\s*{_PART})+\s*", text, re.I) is None:
            raise TaskError(f"--time {text!r} is not a duration; use e.g. 90s, 10m, 1h30m or a number of seconds") from None
        seconds = sum(float(m.group(1)) * _UNIT[m.group(2)[0].lower()] for m in re.finditer(_PART, text, re.I))
    if not 0 < seconds < float("inf"):
        raise TaskError(f"--time must be more than 0 seconds, got {text!r}")
    return seconds


def given(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The `values` (option name -> value) given on the command line itself, not by a
    default or an environment variable. typer bundles its own click, so the parameter
    source is compared by name, not with `click.core.ParameterSource`."""
    def source(name: str) -> str:
        found = ctx.get_parameter_source(name)
        return "" if found is None else found.name

    return {k: v for k, v in values.items() if source(k) == "COMMANDLINE"}


def task_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The Task fields the given `options` set (`time` parsed into seconds); a time budget
    without --trials lifts the trial cap."""
    fields = {TASK_FIELDS[k]: v for k, v in options.items()}
    if "timeout" in fields:
        fields["timeout"] = parse_duration(fields["timeout"])
        fields.setdefault("n_trials", None)
    return fields


def run_settings(options: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The run settings of this run: what the command line gives, else what the study
    stored, else the defaults."""
    return {k: next((s[k] for s in (options, stored) if s.get(k) is not None), default)
            for k, default in RUN_DEFAULTS.items()}
