"""Prompt templates, one per planner decision (package data: `prompts/*.yaml`).

Each YAML file holds Jinja templates for the `system` and `user` messages of one decision
(`parse_request`, `initial_design`, `next_candidates`) or of the retry
feedback (`retry`). They render with `StrictUndefined`: a missing variable is an error,
never an empty string in a prompt. `tests/test_prompts.py` renders every template."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from hyperpilot.errors import HyperpilotError

ROLES = ("system", "user")


def fmt_value(value: Any) -> str:
    """A number or choice as a short token: 3 significant digits for floats."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return json.dumps(value) if isinstance(value, str) or value is None or isinstance(value, bool) else str(value)


def fmt_config(config: dict[str, Any]) -> str:
    """`{"C": 12.3456, "kernel": "rbf"}` -> `C=12.3 kernel="rbf"`."""
    return " ".join(f"{k}={fmt_value(v)}" for k, v in config.items())


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=False, autoescape=False)
    env.filters["value"] = fmt_value
    env.filters["config"] = fmt_config
    return env


@cache
def _templates(name: str) -> dict[str, jinja2.Template]:
    file = resources.files("hyperpilot.prompts") / f"{name}.yaml"
    if not file.is_file():
        raise HyperpilotError(f"no prompt template '{name}'; templates: {', '.join(template_names())}")
    spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    env = _env()
    return {role: env.from_string(spec[role]) for role in ROLES if role in spec}


def template_names() -> list[str]:
    folder = resources.files("hyperpilot.prompts")
    return sorted(e.name[: -len(".yaml")] for e in folder.iterdir() if e.name.endswith(".yaml"))


def render(name: str, **variables: Any) -> list[dict[str, str]]:
    """The chat messages of template `name` filled with `variables`."""
    try:
        return [{"role": role, "content": t.render(**variables).strip()} for role, t in _templates(name).items()]
    except jinja2.UndefinedError as e:
        raise HyperpilotError(f"prompt '{name}' needs a variable that was not given: {e.message}") from e
