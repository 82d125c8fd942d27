"""SIGKILL of the coordinating process in a trial and in a memory write, then resume:
nothing completed is lost or re-run, the budget is met, the memory opens and answers.
The full run (20+ kills over every phase) is `python -m evals.fault_injection`."""

from __future__ import annotations

import random

import pytest

from evals.fault_injection import one_round


@pytest.mark.slow
@pytest.mark.parametrize("i", [0, 1])  # round 0 targets a trial, round 1 a memory write
def test_a_kill_then_resume_loses_and_duplicates_nothing(i: int, tmp_path) -> None:
    row = one_round(i, random.Random(7), tmp_path)
    assert row["phase"] in ("trial", "memory", "idle", "llm"), row
    assert row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["resume_ok"] and row["budget_ok"], row
    assert row["memory_after_kill"] and row["memory_after_resume"], row
