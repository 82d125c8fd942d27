"""What a study's LLM-written `custom_code` programs did, read from the study itself (never
counted on the side): each program ran as one trial with `source="code"`, its state and its
`repair` round (0: a new program; N: the N-th repair in a row), and the writer's own counts
(calls, answers rejected by the checks, errors) that `agent.code_proposer` stores in the
study's `code_writer` attr. Used by the report and the CLI."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from hyperpilot import studies
from hyperpilot.trainers.code import BASELINE_PROGRAM


def program_summary(study: optuna.Study) -> dict[str, Any] | None:
    """Counts of the study's programs and the best one; None when no program was asked for."""
    writer = study.user_attrs.get("code_writer")
    ran = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("source") == "code" and t.state.is_finished()]
    if not writer and not ran:
        return None
    repairs = [t for t in ran if int(t.user_attrs.get("repair", 0) or 0) > 0]
    best = study.user_attrs.get("best_program")
    if best:
        trial = study.trials[int(best["trial"])]
        written = trial.user_attrs.get("source") == "code"
        best = {**best, "by": "the LLM" if written else
                "the built-in baseline" if trial.user_attrs.get("code") == BASELINE_PROGRAM else "the LLM, knobs by BO"}
    path = studies.study_dir(study.study_name) / "best_program.py"
    return {
        "ran": len(ran),
        "completed": sum(t.state == TrialState.COMPLETE for t in ran),
        "failed": sum(t.state == TrialState.FAIL for t in ran),
        "pruned": sum(t.state == TrialState.PRUNED for t in ran),
        "repairs_ran": len(repairs),
        "repaired": sum(t.state == TrialState.COMPLETE for t in repairs),
        "writer": dict(writer or {}),
        "best": None if not best else {**best, "file": str(path)},
    }


def program_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for the CLI table and the report."""
    w = info["writer"]
    rows = [
        ("programs run", f"{info['ran']}: {info['completed']} completed, {info['failed']} failed"
                         + (f", {info['pruned']} pruned" if info["pruned"] else "")),
        ("repaired", f"{info['repaired']} (repairs run: {info['repairs_ran']})"),
    ]
    if w:
        rows.append(("writer", f"{w.get('writer', '?')}: {w.get('calls', 0)} calls, {w.get('rejected', 0)} answers "
                               f"rejected by the checks, {w.get('writer_errors', 0)} errors"
                               + (f"; gave up {w['gave_up']}x, BO went on" if w.get("gave_up") else "")))
        if w.get("last_rejection"):
            rows.append(("last rejection", str(w["last_rejection"])[:200]))
    best = info["best"]
    if best:
        rows.append(("best program", f"trial {best['trial']}, value {best['value']:.4f}, by {best['by']}: {best['file']}"))
    else:
        rows.append(("best program", "none completed a trial"))
    return rows
