"""`CodeProposer`: asks a code writer (an LLM) for `custom_code` programs and queues them.

`write_code(prompt) -> str` is any callable: an LLM endpoint, a scripted fake in tests, a
person. The proposer never trusts it: an answer is extracted (a fenced block or the whole
text), checked statically (`trainers.code.check_program`), stored by content hash in the
study folder and queued as a `custom_code` trial with `source="code"`, `code_id` and
`code` in its user_attrs. The trial then runs in the sandbox like every other one.

Lifecycle (see `agent.proposer`):
- `start`: if the study tunes `custom_code`, plan a first program.
- `propose`: when a program is planned, call the writer; a rejected answer is sent back
  with the rejection for a repair; after `max_repairs` repairs without an acceptable
  program, give up — nothing is queued and BO proposes instead.
- `observe`: after one of its trials, a failure plans a repair (prompt = the program and
  the summarised traceback), a success plans an improvement (until `max_programs`
  programs ran). Every answer, rejection and failure is counted in `stats`.
- `finish`: export the best program to the study folder (`best_program.py`) and append it
  to the report.

A writer that raises, returns prose, or keeps failing costs at most
`max_programs × (1 + max_repairs)` calls and never stops the study.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from hyperpilot import studies
from hyperpilot.agent.proposer import Proposer, SolveContext
from hyperpilot.cards import get_model_card
from hyperpilot.errors import HyperpilotError
from hyperpilot.trainers.code import CUSTOM_CODE, CodeRejected, check_program, extract_code, save_program

if TYPE_CHECKING:
    from hyperpilot.agent.assistant import Result, TrialRecord

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

    def start(self, ctx: SolveContext) -> None:
        if CUSTOM_CODE not in ctx.space.models:
            self._next = None
            return
        task = ctx.task
        self._next = INTRO.format(
            contract=get_model_card(CUSTOM_CODE).to_text(), task_type=task.task_type, metric=task.metric,
            direction=task.direction, dataset=ctx.dataset_card.to_text(),
        )
        self._repairs = 0

    def propose(self, ctx: SolveContext) -> None:
        if self._next is None or self._programs >= self.max_programs:
            return
        prompt, self._next = self._next, None
        while True:
            answer = self._ask(prompt)
            if answer is None:
                return self._give_up()
            code = extract_code(answer)
            try:
                program = check_program(code)
            except CodeRejected as e:
                self.stats["rejected"] += 1
                self.transcript.append({"role": "check", "content": str(e)})
                if self._repairs >= self.max_repairs:
                    return self._give_up()
                self._repairs += 1
                prompt = REPAIR.format(code=code.strip()[:4000], error=str(e))
                continue
            break
        save_program(str(ctx.task.study_name), program.code)
        try:
            ctx.space.enqueue(ctx.study, CUSTOM_CODE, get_model_card(CUSTOM_CODE).default_config(), self.name,
                              code_id=program.code_id, code=program.code)
        except HyperpilotError as e:  # pragma: no cover - the card default always fits
            self.transcript.append({"role": "error", "content": str(e)})
            return self._give_up()
        self._queued[program.code_id] = program.code
        self._programs += 1
        self.stats["queued"] += 1

    def observe(self, ctx: SolveContext, record: TrialRecord) -> None:
        if record.source != self.name or record.model != CUSTOM_CODE:
            return
        attrs = _attrs(ctx, record.number)
        code = self._queued.get(str(attrs.get("code_id")), str(attrs.get("code", "")))
        if record.value is None:
            self.stats["failed"] += 1
            self.transcript.append({"role": "trial", "content": record.error})
            if self._repairs >= self.max_repairs:
                return self._give_up()
            self._repairs += 1
            self._programs -= 1  # a repair replaces the failed program
            detail = str(attrs.get("traceback", "")) or record.error
            self._next = REPAIR.format(code=code.strip()[:4000], error=f"{record.error}\n{detail}"[:2500])
            return
        self.stats["succeeded"] += 1
        self._repairs = 0
        if self._programs < self.max_programs:
            best = "n/a" if record.best_value is None else f"{record.best_value:.4f}"
            self._next = IMPROVE.format(value=record.value, metric=ctx.task.metric, direction=ctx.task.direction,
                                        best=best, code=code.strip()[:4000])

    def finish(self, ctx: SolveContext, result: Result) -> None:
        """Export the best program (if any of this study's programs completed a trial)."""
        export_best_program(ctx.study, str(ctx.task.study_name), result)

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


def _attrs(ctx: SolveContext, number: int) -> dict[str, Any]:
    for t in ctx.study.get_trials(deepcopy=False):
        if t.number == number:
            return dict(t.user_attrs)
    return {}


def export_best_program(study: Any, study_name: str, result: Result | None = None) -> str | None:
    """Write the best completed `custom_code` program to `best_program.py` in the study
    folder and append it to `report.md`/`report.json`; returns its code_id (None if none)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.params.get("model") == CUSTOM_CODE and isinstance(t.user_attrs.get("code"), str)]
    if not done:
        return None
    best = (max if study.direction.name == "MAXIMIZE" else min)(done, key=lambda t: t.value)
    code, cid = best.user_attrs["code"], str(best.user_attrs.get("code_id", ""))
    folder = studies.study_dir(study_name)
    (folder / "best_program.py").write_text(code, encoding="utf-8")
    overall = result is not None and result.best_model == CUSTOM_CODE
    report = folder / "report.md"
    if report.exists():
        note = "the best model of the study" if overall else "the best custom program (another model won)"
        with open(report, "a", encoding="utf-8") as f:
            f.write(f"\n## Best program\n\n`{cid}` — trial {best.number}, value {best.value:.4f}, {note}; "
                    f"saved as `best_program.py`.\n\n```python\n{code.rstrip()}\n```\n")
    report_json = folder / "report.json"
    if report_json.exists():
        data = json.loads(report_json.read_text(encoding="utf-8"))
        data["best_program"] = {"code_id": cid, "trial": best.number, "value": best.value, "file": "best_program.py"}
        report_json.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return cid
