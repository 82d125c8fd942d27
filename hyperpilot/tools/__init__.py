"""Agent tools: hyperpilot's actions as plain functions with pydantic arguments, and as
LangChain `StructuredTool`s (`all_tools`) for a chat model or the conversation engine
(`hyperpilot.agent.chat`).

    data.py     profile_dataset                         the dataset card
    models.py   list_models, model_card                 the model cards
    memory.py   search_memory                           past studies in the trial memory
    study.py    start_study, continue_study, study_status, explain, compare_trials, export_study

Each function is `fn(args, runtime) -> dict` (JSON-able); a user's mistake (unknown study,
model or column, a missing file) comes back as `{"error": "one line"}`, never an exception.
They call the functions the CLI and the Python API use (`Assistant`, `studies`, the cards,
`report.plots.analyse_model`): there is no second implementation. Importing this package
does not import LangChain; `all_tools` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hyperpilot.tools import data, memory, models, study
from hyperpilot.tools.runtime import Runtime

if TYPE_CHECKING:
    from langchain_core.tools import StructuredTool

__all__ = ["TOOLS", "Runtime", "ToolSpec", "all_tools", "call_tool"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: Callable[[Any, Runtime], dict[str, Any]]
    args: type[BaseModel]
    description: str


TOOLS: dict[str, ToolSpec] = {s.name: s for s in [
    ToolSpec("profile_dataset", data.profile_dataset, data.ProfileArgs,
             "Profile a dataset: rows, columns, kinds, missing values, class balance."),
    ToolSpec("list_models", models.list_models, models.ListModelsArgs, "List the model cards hyperpilot can tune."),
    ToolSpec("model_card", models.model_card, models.ModelCardArgs,
             "Read one model card: description, search space, default config."),
    ToolSpec("search_memory", memory.search_memory, memory.SearchMemoryArgs,
             "Search the trial memory for past studies like a description."),
    ToolSpec("start_study", study.start_study, study.StartStudyArgs,
             "Start a study: tune models on a table within a budget; saves the best model and a report."),
    ToolSpec("continue_study", study.continue_study, study.ContinueStudyArgs,
             "Continue a study with more trials."),
    ToolSpec("study_status", study.study_status, study.StudyArgs,
             "Status of a study: trials done, failed, running, and the best so far."),
    ToolSpec("explain", study.explain, study.ExplainArgs,
             "Explain a trial's config (default the best) from importances measured over the study's trials."),
    ToolSpec("compare_trials", study.compare_trials, study.CompareArgs, "Compare two trials of a study."),
    ToolSpec("export_study", study.export_study, study.ExportArgs,
             "Copy a study's best model and report into a folder."),
]}


def call_tool(name: str, arguments: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Run tool `name` on `arguments` (validated by its pydantic model); an unknown tool or
    invalid arguments come back as `{"error": ...}` like any other mistake."""
    from pydantic import ValidationError

    spec = TOOLS.get(name)
    if spec is None:
        return {"error": f"no tool named '{name}'; the tools are {', '.join(TOOLS)}"}
    try:
        args = spec.args.model_validate(arguments)
    except ValidationError as e:
        return {"error": _invalid(name)(e)}
    return spec.fn(args, runtime)


def _invalid(name: str) -> Callable[[Any], str]:
    def say(e: Any) -> str:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "arguments"
        return f"invalid arguments for {name}: {where}: {first['msg']}"

    return say


def all_tools(runtime: Runtime | None = None) -> list[StructuredTool]:
    """Every tool as a LangChain `StructuredTool` bound to `runtime` (default: a new one: the
    sandbox, memory off, `$HYPERPILOT_LLM`, paths relative to the current folder)."""
    from langchain_core.tools import StructuredTool

    bound = runtime or Runtime()

    def make(spec: ToolSpec) -> StructuredTool:
        def run(**kwargs: Any) -> dict[str, Any]:
            return call_tool(spec.name, kwargs, bound)

        return StructuredTool.from_function(func=run, name=spec.name, description=spec.description,
                                            args_schema=spec.args, handle_validation_error=_invalid(spec.name))

    return [make(s) for s in TOOLS.values()]
