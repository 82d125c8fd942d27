"""The memory's journal: where a process that cannot open the memory leaves its records.

chromadb may be opened by one process at a time (even a read rewrites its index files), so
a solve that finds the memory in use by another process appends its study and trial
records here instead, as JSON Lines (`StudyEntry` / `TrialEntry`, the format of an export),
under `<memory>/journal/`. Whoever opens the memory next (it holds the writer lock) merges
the journal into chromadb: records are keyed by study id and trial number, so merging a
record twice changes nothing.

Files:

    journal/pending.jsonl               appended to by any process, one locked write per batch
    journal/claimed-<ns>-<pid>.jsonl    the pending file, renamed by the merger before merging

Appending: open `pending.jsonl`, take an exclusive `flock` on it, check that the path still
names the file that is open (a merger may have renamed it meanwhile; then start over),
write the lines in one call, fsync, unlock. Merging (only by the writer-lock holder): take
the same lock, rename the file to a claimed name, unlock; merge every claimed file, oldest
first; delete them. A merger killed at any point leaves claimed files that the next merger
merges again (idempotent): nothing is lost and, keyed by id, nothing is duplicated."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hyperpilot.memory.records import Line, StudyEntry, TrialEntry

PENDING = "pending.jsonl"
CLAIMED = "claimed-"
_LINE: TypeAdapter[Any] = TypeAdapter(Line)


class Journal:
    """The journal of the memory at `memory_path` (see the module docstring)."""

    def __init__(self, memory_path: Path) -> None:
        self.folder = memory_path / "journal"
        self.pending_path = self.folder / PENDING

    def pending(self) -> bool:
        """Whether there are records waiting to be merged (one directory read)."""
        try:
            return any(n == PENDING or n.startswith(CLAIMED) for n in os.listdir(self.folder))
        except OSError:
            return False

    def append(self, records: Iterable[StudyEntry | TrialEntry]) -> int:
        """Append `records` (studies before their trials) in one locked write; returns how many."""
        lines = [r.model_dump_json() + "\n" for r in records]
        if not lines:
            return 0
        data = "".join(lines).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.pending_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not _same_file(fd, self.pending_path):
                    continue  # a merger claimed the file we opened: append to the new one
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a writer died mid-line: keep our lines whole
                _write_all(fd, data)
                os.fsync(fd)
                return len(lines)
            finally:
                os.close(fd)  # also drops the lock

    def claim(self) -> list[Path]:
        """Rename the pending file to a claimed name; returns every claimed file, oldest
        first (also those a merger that died left behind). Only the writer-lock holder calls this."""
        try:
            fd = os.open(self.pending_path, os.O_RDWR)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits for an append in progress
                if _same_file(fd, self.pending_path):
                    if os.fstat(fd).st_size:
                        os.rename(self.pending_path, self.folder / f"{CLAIMED}{time.time_ns():020d}-{os.getpid()}.jsonl")
                    else:
                        os.unlink(self.pending_path)
                    _sync_dir(self.folder)
            finally:
                os.close(fd)
        try:
            return sorted(self.folder / n for n in os.listdir(self.folder) if n.startswith(CLAIMED) and n.endswith(".jsonl"))
        except OSError:
            return []

    @staticmethod
    def read(files: list[Path]) -> tuple[list[StudyEntry], list[TrialEntry], int]:
        """The records of `files`, in order, the last record of each key winning; and how
        many lines could not be read (a torn line of a writer that died, say)."""
        studies: dict[str, StudyEntry] = {}
        trials: dict[str, TrialEntry] = {}
        bad = 0
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            for raw in text.splitlines():
                if not raw.strip():
                    continue
                try:
                    record = _LINE.validate_python(json.loads(raw))
                except (ValueError, ValidationError):
                    bad += 1
                    continue
                if isinstance(record, StudyEntry):
                    studies.pop(record.id, None)
                    studies[record.id] = record
                else:
                    trials.pop(record.id, None)
                    trials[record.id] = record
        return list(studies.values()), list(trials.values()), bad

    def done(self, files: list[Path]) -> None:
        """Delete merged files, oldest first (a kill in between leaves the newest ones,
        which merge again to the same result)."""
        for path in files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        _sync_dir(self.folder)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
