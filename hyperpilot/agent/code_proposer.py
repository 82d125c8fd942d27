"""Code as a hyperparameter in the loop: `CodeProposer` and `ProgramChooser`.

`CodeProposer(write_code)` asks any `write_code(prompt) -> str` callable (an LLM endpoint,
a scripted fake in tests, a person) for `custom_code` programs. It never trusts it: an
answer is extracted (a fenced block or the whole text), checked statically
(`trainers.code.check_program`), stored by content hash in the study folder and
suggested as a `custom_code` trial with `source="code"` and `code_id` / `code` in its
attrs. The trial then runs in the sandbox like every other one, one process per fold.

Lifecycle (see `core.proposer`):
- `start`: if the study tunes `custom_code`, plan a first program.
- `suggest`: when a program is planned, call the writer; a rejected answer is sent back
  with the rejection for a repair; after `max_repairs` repairs without an acceptable
  program, give up — nothing is suggested and BO proposes instead.
- `observe`: after one of its trials, a failure plans a repair (prompt = the program and
  the summarised traceback), a success plans an improvement (until `max_programs`
  programs ran). Every answer, rejection and failure is counted in `stats`.
- `finish`: record the writer's counts (`code_writer` user attr: calls, rejected answers,
  errors, …) and the best program (`best_program`) in the study for the report. Each
  program's trial carries `repair`: 0 for a new program, N for the N-th repair in a row
  (of a rejected answer or a failed trial), so the report counts programs from the trials.

`ProgramChooser.code_for(handle)` says which program a `custom_code` trial runs: the one
its suggestion carries, else the best program of the study so far (BO then tunes that
program's knobs), else the built-in baseline.

A writer that raises, returns prose, or keeps failing costs at most
`max_programs × (1 + max_repairs)` calls and never stops the study.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from hyperpilot import studies
from hyperpilot.cards import get_model_card
from hyperpilot.core.loop import FixedTrial, TrialHandle
from hyperpilot.core.proposer import Proposer, StudyContext
from hyperpilot.core.types import Suggestion, TrialRecord
from hyperpilot.trainers.code import (
    BASELINE_PROGRAM,
    CUSTOM_CODE,
    CodeRejected,
    Program,
    check_program,
    code_id,
    extract_code,
)

INTRO = """Write a Python module for hyperpilot's `custom_code` model.
{contract}

Task: {task_type}, metric {metric} ({direction}).
{dataset}

Answer with the module only, in one ```python block."""
REPAIR = """Your program failed. Fix it and answer with the whole corrected module in one ```python block.

Program:
```python
{code}
```
Failure:
{error}"""
IMPROVE = """Your program scored {value:.4f} ({metric}, {direction}); the best trial of the study so far scored {best}.
Write a different program that may do better (another estimator, an ensemble, other settings).
Answer with the module only, in one ```python block.

Previous program:
```python
{code}
```"""


class CodeProposer(Proposer):
    """Queues LLM-written `custom_code` programs, with bounded repairs and safe fallback."""

    name = "code"

    def __init__(self, write_code: Callable[[str], str], *, max_programs: int = 3, max_repairs: int = 2) -> None:
        self.write_code = write_code
        self.max_programs = max_programs
        self.max_repairs = max_repairs
        self.stats: dict[str, int] = {"calls": 0, "writer_errors": 0, "rejected": 0, "queued": 0, "failed": 0,
                                      "succeeded": 0, "gave_up": 0}
        self.transcript: list[dict[str, str]] = []
        self._next: str | None = None
        self._repairs = 0
        self._programs = 0
        self._queued: dict[str, str] = {}

    def start(self, ctx: StudyContext) -> list[Suggestion]:
        if CUSTOM_CODE not in ctx.space.models:
            self._next = None
            return []
        task = ctx.task
        self._next = INTRO.format(
            contract=get_model_card(CUSTOM_CODE).to_text(), task_type=task.task_type, metric=task.metric,
            direction=task.direction, dataset=ctx.dataset_card.to_text() if ctx.dataset_card is not None else "",
        )
        self._repairs = 0
        return []

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        if self._next is None or self._programs >= self.max_programs:
            return None
        prompt, self._next = self._next, None
        while True:
            answer = self._ask(prompt)
            if answer is None:
                self._give_up()
                return None
            code = extract_code(answer)
            try:
                program = check_program(code)
            except CodeRejected as e:
                self.stats["rejected"] += 1
                self.transcript.append({"role": "check", "content": str(e)})
                if self._repairs >= self.max_repairs:
                    self._give_up()
                    return None
                self._repairs += 1
                prompt = REPAIR.format(code=code.strip()[:4000], error=str(e))
                continue
            break
        save_program(str(ctx.task.study_name), program.code)
        self._queued[program.code_id] = program.code
        self._programs += 1
        self.stats["queued"] += 1
        return Suggestion(CUSTOM_CODE, get_model_card(CUSTOM_CODE).default_config(), self.name,
                          attrs={"code_id": program.code_id, "code": program.code, "repair": self._repairs})

    def observe(self, ctx: StudyContext, record: TrialRecord) -> None:
        if record.source != self.name or record.model != CUSTOM_CODE:
            return
        code = self._queued.get(str(record.attrs.get("code_id")), str(record.attrs.get("code", "")))
        if record.value is None:
            self.stats["failed"] += 1
            self.transcript.append({"role": "trial", "content": record.error})
            if self._repairs >= self.max_repairs:
                return self._give_up()
            self._repairs += 1
            self._programs -= 1  # a repair replaces the failed program
            detail = str(record.attrs.get("traceback", "")) or record.error
            self._next = REPAIR.format(code=code.strip()[:4000], error=f"{record.error}\n{detail}"[:2500])
            return
        self.stats["succeeded"] += 1
        self._repairs = 0
        if self._programs < self.max_programs:
            best = "n/a" if record.best_value is None else f"{record.best_value:.4f}"
            self._next = IMPROVE.format(value=record.value, metric=ctx.task.metric, direction=ctx.task.direction,
                                        best=best, code=code.strip()[:4000])

    def finish(self, ctx: StudyContext) -> None:
        """Record the writer's counts (added to a resumed study's) and the best program (if
        any of this study's programs completed a trial)."""
        stored = ctx.study.user_attrs.get("code_writer") or {}
        counts = {k: int(stored.get(k, 0)) + v for k, v in self.stats.items()}
        rejected = [t["content"] for t in self.transcript if t["role"] in ("check", "error")]
        ctx.study.set_user_attr("code_writer", {**counts, "writer": _describe(self.write_code),
                                                "last_rejection": rejected[-1][:300] if rejected else stored.get("last_rejection", "")})
        best = best_program_trial(ctx.study)
        if best is not None:
            ctx.study.set_user_attr("best_program", {"code_id": best.user_attrs.get("code_id", ""), "trial": best.number,
                                                     "value": best.value})

    def _ask(self, prompt: str) -> str | None:
        self.stats["calls"] += 1
        self.transcript.append({"role": "prompt", "content": prompt})
        try:
            answer = self.write_code(prompt)
        except Exception as e:  # noqa: BLE001 - a writer's failure falls back to BO
            self.stats["writer_errors"] += 1
            self.transcript.append({"role": "error", "content": f"{type(e).__name__}: {e}"})
            return None
        if not isinstance(answer, str) or not answer.strip():
            self.stats["rejected"] += 1
            self.transcript.append({"role": "check", "content": "empty answer"})
            return None
        self.transcript.append({"role": "answer", "content": answer})
        return answer

    def _give_up(self) -> None:
        self.stats["gave_up"] += 1
        self._next = None


def _describe(write_code: Callable[[str], str]) -> str:
    """Who writes the programs: the LLM behind `llm.text` ("embedded:SmolLM2-…"), else the callable's name."""
    describe = getattr(getattr(write_code, "__self__", None), "describe", None)
    return str(describe()) if callable(describe) else getattr(write_code, "__qualname__", type(write_code).__name__)


# -- programs of a study ------------------------------------------------------------------
def _programs_dir(study_name: str) -> Any:
    folder = studies.study_dir(study_name) / "programs"
    folder.mkdir(exist_ok=True)
    return folder


def save_program(study_name: str, code: str) -> Program:
    """Store `code` under the study, keyed by its hash (idempotent). Does not check it."""
    program = Program(code_id(code), code)
    path = _programs_dir(study_name) / f"{program.code_id}.py"
    if not path.exists():
        path.write_text(code, encoding="utf-8")
    return program


def best_program_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed `custom_code` trial that carries its program."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.params.get("model") == CUSTOM_CODE and isinstance(t.user_attrs.get("code"), str)]
    if not done:
        return None
    return (max if study.direction.name == "MAXIMIZE" else min)(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]


class ProgramChooser:
    """Which program a `custom_code` trial of a study runs (see the module docstring)."""

    def __init__(self, study: optuna.Study, study_name: str) -> None:
        self.study = study
        self.study_name = study_name

    def code_for(self, handle: TrialHandle | FixedTrial) -> tuple[str | None, dict[str, Any]]:
        """(the program, attrs to store with the trial); (None, {}) for other models."""
        if handle.model != CUSTOM_CODE:
            return None, {}
        code = handle.suggestion.attrs.get("code")
        if not isinstance(code, str):
            best = best_program_trial(self.study)
            code = best.user_attrs["code"] if best is not None else BASELINE_PROGRAM
            save_program(self.study_name, code)
        return code, {"code_id": code_id(code), "code": code}

    def program_of(self, trial: optuna.trial.FrozenTrial) -> str | None:
        """The program a finished trial ran (None when it is not a `custom_code` trial)."""
        if trial.params.get("model") != CUSTOM_CODE:
            return None
        code = trial.user_attrs.get("code")
        return code if isinstance(code, str) else BASELINE_PROGRAM
