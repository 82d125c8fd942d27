"""Export and import the memory as JSON Lines, and build memory packs.

A file holds one JSON object per line: `{"kind": "study", ...}` (a `StudyEntry`) or
`{"kind": "trial", ...}` (a `TrialEntry`), studies before their trials. A *memory pack*
is such a file built from benchmark runs (`write_pack`), shipped, and imported into a
fresh install (`hyperpilot memory import pack.jsonl`) so that its first solve starts warm.

Import checks every line: a line that is not JSON, does not fit the schema, or is a
trial of a study that is neither in the file nor in the memory is reported with its line
number and skipped; the good lines are kept. Records are keyed by id (study id; study id
and trial number), so importing a file twice changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hyperpilot.errors import MemoryStoreError
from hyperpilot.memory.records import Line, StudyEntry, TrialEntry, with_ranks
from hyperpilot.memory.store import Memory

_LINE: TypeAdapter[Any] = TypeAdapter(Line)
_BATCH = 2000


@dataclass
class ImportReport:
    studies: int = 0
    trials: int = 0
    already_there: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"imported {self.studies} studies and {self.trials} trials"
                f" ({self.already_there} records were already there), skipped {len(self.bad)} bad line(s)")


def parse_lines(lines: Iterable[str]) -> tuple[list[StudyEntry], list[tuple[int, TrialEntry]], list[tuple[int, str]]]:
    """Validate each line; returns studies, (line number, trial) pairs and bad lines."""
    studies: list[StudyEntry] = []
    trials: list[tuple[int, TrialEntry]] = []
    bad: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = _LINE.validate_python(json.loads(raw))
        except json.JSONDecodeError as e:
            bad.append((number, f"not JSON ({e.msg})"))
            continue
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err.get("loc", ()))
            bad.append((number, f"{where}: {err.get('msg')}" if where else str(err.get("msg"))))
            continue
        if isinstance(record, StudyEntry):
            studies.append(record)
        else:
            trials.append((number, record))
    return studies, trials, bad


def import_jsonl(memory: Memory, path: str | Path, origin: str | None = None) -> ImportReport:
    """Import an export or a memory pack into `memory` (see the module docstring).
    `origin` overrides the studies' origin (e.g. the pack's name)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MemoryStoreError(f"cannot read '{path}': {e.strerror}") from e
    studies, trials, bad = parse_lines(text.splitlines())
    if origin:
        studies = [s.model_copy(update={"origin": origin}) for s in studies]
    with memory.held():
        return _import(memory, studies, trials, ImportReport(bad=bad))


def _import(memory: Memory, studies: list[StudyEntry], trials: list[tuple[int, TrialEntry]],
            report: ImportReport) -> ImportReport:
    bad = report.bad
    known = {s.id: s for s in studies}
    unknown = {t.study_id for _, t in trials} - set(known)
    for sid in unknown:
        try:
            known[sid] = memory.get_study(sid)
        except MemoryStoreError:
            pass
    good: list[TrialEntry] = []
    for number, t in trials:
        if t.study_id in known:
            good.append(t)
        else:
            bad.append((number, f"trial of unknown study '{t.study_id}' (its study line is missing or bad)"))
    report.bad.sort()
    report.already_there = _existing(memory, [s.id for s in studies], [t.id for t in good])
    for i in range(0, len(studies), _BATCH):
        memory.add_studies(studies[i:i + _BATCH])
    by_study: dict[str, list[TrialEntry]] = {}
    for t in good:
        by_study.setdefault(t.study_id, []).append(t)
    for sid, ts in by_study.items():  # fill in ranks a hand-made pack left out
        if any(t.rank is None and t.status == "complete" for t in ts):
            by_study[sid] = with_ranks(ts, known[sid].direction)
    flat = [t for ts in by_study.values() for t in ts]
    for i in range(0, len(flat), _BATCH):
        memory.add_trials(flat[i:i + _BATCH])
    report.studies, report.trials = len(studies), len(good)
    return report


def export_jsonl(memory: Memory, path: str | Path, study_ids: Iterable[str] | None = None) -> tuple[int, int]:
    """Write studies (all, or those named) and their trials; returns (studies, trials)."""
    wanted = set(study_ids) if study_ids is not None else None
    n_trials = 0
    path = Path(path)
    with memory.held(create=False):
        chosen = [s for s in memory.studies() if wanted is None or s.id in wanted]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for s in chosen:
                f.write(s.model_dump_json() + "\n")
            for s in chosen:
                for t in memory.trials(s.id):
                    f.write(t.model_dump_json() + "\n")
                    n_trials += 1
    return len(chosen), n_trials


def write_pack(path: str | Path, studies: Iterable[tuple[StudyEntry, list[TrialEntry]]]) -> tuple[int, int]:
    """Write a memory pack without a store (e.g. from benchmark runs): each study with its
    trials, ranks filled in. Returns (studies, trials)."""
    from hyperpilot.memory.records import summarise

    n_s = n_t = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for study, trials in studies:
            ranked = with_ranks(trials, study.direction)
            f.write(summarise(study, ranked).model_dump_json() + "\n")
            for t in ranked:
                f.write(t.model_dump_json() + "\n")
            n_s, n_t = n_s + 1, n_t + len(ranked)
    return n_s, n_t


def _existing(memory: Memory, study_ids: list[str], trial_ids: list[str]) -> int:
    found = 0
    for coll, ids in ((memory._studies, study_ids), (memory._trials, trial_ids)):  # noqa: SLF001 - same package
        for i in range(0, len(ids), _BATCH):
            found += len(memory._call(coll.get, ids=ids[i:i + _BATCH], include=[])["ids"])  # noqa: SLF001
    return found
