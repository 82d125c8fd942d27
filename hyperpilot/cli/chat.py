"""`hyperpilot chat`: the conversation engine (`hyperpilot.agent.chat`) in a terminal, with
rich output and the same progress display as `solve`. Imports nothing heavy until it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from hyperpilot.cli.options import LlmKeyEnvOption, LlmOption, MemoryOption, SandboxOption, StorageOption, WorkersOption
from hyperpilot.cli.output import err, fail, line, out, show_notices

QUIT = {"quit", "exit", "bye", "q", ":q"}
STYLE = {"question": "bold yellow", "plan": "bold cyan", "result": "bold green", "error": "bold red", "answer": "bold"}


def chat(
    resume: Optional[str] = typer.Option(None, "--resume", metavar="NAME", help="Continue a saved conversation."),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="Name to save this conversation under (default chat-DATE-TIME)."),
    llm: LlmOption = None,
    llm_key_env: LlmKeyEnvOption = None,
    memory: MemoryOption = None,
    sandbox: SandboxOption = None,
    workers: WorkersOption = None,
    storage: StorageOption = None,
) -> None:
    """Talk to hyperpilot: say what to tune, answer its questions, confirm the plan, then ask
    what's best so far, why, try N more, use another model, export it. 'quit' ends (saved)."""
    from hyperpilot.agent.chat import Conversation
    from hyperpilot.cli.commands import _executor, _planner
    from hyperpilot.cli.output import RunProgress
    from hyperpilot.errors import HyperpilotError
    from hyperpilot.tools import Runtime, all_tools

    show_notices()
    try:
        planner = _planner(llm, llm_key_env)
        executor = _executor(sandbox is False, None, workers or 1)
        runtime = Runtime(executor=executor, llm=planner or "none", memory=True if memory is None else memory,
                          workers=workers or 1, storage=storage, cwd=Path.cwd(), progress=RunProgress)
        tools = all_tools(runtime)
        conversation = (Conversation.resume(resume, tools, planner, cwd=runtime.cwd) if resume
                        else Conversation(tools, planner, name=name, cwd=runtime.cwd))
    except HyperpilotError as e:
        fail(str(e))
        raise typer.Exit(2) from None
    if resume:
        for entry in conversation.history[-6:]:
            who = "you" if entry.get("role") == "user" else "hyperpilot"
            line(f"[dim]{who}: {escape(str(entry.get('text', '')))}[/dim]")
        line(f"[bold]resumed[/bold] {escape(conversation.name)}" + (
            f" (study {escape(conversation.state.study)})" if conversation.state.study else ""))
    else:
        line("[bold]hyperpilot chat[/bold]: say what to tune, e.g. 'tune a random forest on data.csv to predict churn, "
             "30 trials'. 'help' for more, 'quit' to end.")
    while True:
        try:
            text = out.input("[bold]you>[/bold] ")
        except (EOFError, KeyboardInterrupt):
            text = "quit"
        if text.strip().lower() in QUIT:
            line(f"saved; continue with: hyperpilot chat --resume {escape(conversation.name)}", err)
            return
        try:
            reply = conversation.turn(text)
        except KeyboardInterrupt:
            line("interrupted; the study is saved (say 'try 10 more' to continue it)", err)
            continue
        line(f"[{STYLE.get(reply.kind, 'bold')}]hyperpilot>[/] {escape(reply.text)}")
