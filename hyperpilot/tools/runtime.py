"""`Runtime`: how the agent tools run studies (executor, planner LLM, memory, storage,
folder of relative paths, progress display). One per conversation; the tools read it,
never a global."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hyperpilot.errors import HyperpilotError


class Progress(Protocol):
    """What a run reports to while it runs (`cli.output.RunProgress` is one)."""

    def on_start(self, task: Any) -> None: ...

    def on_trial(self, record: Any) -> None: ...


class _Quiet:
    def on_start(self, task: Any) -> None:
        pass

    def on_trial(self, record: Any) -> None:
        pass


@dataclass
class Runtime:
    """`executor`: where trials run (None: one `SandboxExecutor`, made on first use and kept
    warm for the next study); `llm`: the studies' planner (an `LLM` or a spec; None:
    `$HYPERPILOT_LLM`); `memory`: warm-start from and store into the trial memory (True, a
    `Memory`, or False); `storage`: the study storage URL (None: the default); `cwd`: the
    folder relative paths are read from and exported to; `progress(what)`: a context manager
    giving a `Progress` while a study runs (None: silent)."""

    executor: Any = None
    llm: Any = None
    memory: Any = False
    workers: int = 1
    storage: str | None = None
    cwd: Path = field(default_factory=Path.cwd)
    progress: Callable[[str], AbstractContextManager[Progress]] | None = None

    def path(self, name: str) -> Path:
        """`name` (a user's path) as an absolute path, relative ones under `cwd`."""
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.cwd / path

    def running(self, what: str) -> AbstractContextManager[Progress]:
        return self.progress(what) if self.progress is not None else nullcontext(_Quiet())

    def assistant(self, progress: Progress) -> Any:
        """An `Assistant` for one study, reporting to `progress`."""
        from hyperpilot.agent import Assistant
        from hyperpilot.sandbox import SandboxExecutor

        if self.executor is None:
            self.executor = SandboxExecutor(workers=self.workers)
        return Assistant(executor=self.executor, llm=self.llm, memory=self.memory, workers=self.workers,
                         on_trial=progress.on_trial, on_start=progress.on_start, storage=self.storage)


def safe(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`fn` with a user's mistake (`HyperpilotError`) returned as `{"error": one line}`, so a
    conversation goes on."""
    def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return fn(*args, **kwargs)
        except HyperpilotError as e:
            return {"error": str(e)}

    call.__name__, call.__doc__ = fn.__name__, fn.__doc__
    return call
