"""Shared study storage: `--storage URL` / `Assistant(storage=...)`. Two worker processes
(`hyperpilot solve --study NAME --storage URL`, each with its own HYPERPILOT_HOME, as on two
machines) on one study in a shared SQLite file, a journal file and a local PostgreSQL
server that this test starts: the budget is met exactly, no trial lost or duplicated."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hyperpilot import studies
from hyperpilot.core.loop import SURPLUS, count_finished, retried
from hyperpilot.errors import StudyError

BUDGET = 10
# a worker: `hyperpilot solve ...` once its heavy imports are done and the test says go (both start together)
SOLVE = """import sys, time, pathlib
import hyperpilot.agent, hyperpilot.sandbox, sklearn.neighbors
ready, go = pathlib.Path(sys.argv.pop(1)), pathlib.Path(sys.argv.pop(1))
ready.touch()
while not go.exists():
    time.sleep(0.01)
from hyperpilot.cli import main
main()
"""


@pytest.mark.parametrize("url, message", [
    ("nosuch://host/db", "unknown database kind 'nosuch'"),
    ("mysql+nosuchdriver://u@127.0.0.1:1/db", "cannot open the study storage"),
    ("studies.txt", "is neither a database URL"),
    ("sqlite:////no/such/folder/studies.db", "cannot connect: unable to open database file"),
])
def test_a_bad_storage_url_is_one_line(url: str, message: str) -> None:
    with pytest.raises(StudyError) as info:
        studies.storage(url)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_cli_reports_an_unreachable_server_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    from typer.testing import CliRunner

    from hyperpilot.cli import app

    url = f"postgresql://someone:secret@127.0.0.1:{_free_port()}/db"
    got = CliRunner().invoke(app, ["studies", "list", "--storage", url])
    assert got.exit_code == 2
    assert "cannot connect" in got.output and "secret" not in got.output and "Traceback" not in got.output


def _workers(url: str, tmp_path: Path, name: str) -> optuna.Study:
    """Two `hyperpilot solve` processes on study `name` in `url` at once; the study after."""
    procs = []
    for i in range(2):
        env = {**os.environ, "HYPERPILOT_HOME": str(tmp_path / f"machine-{i}"), "HYPERPILOT_LLM": "none"}
        env.pop("HYPERPILOT_STORAGE", None)
        cmd = [sys.executable, "-c", SOLVE, str(tmp_path / f"ready-{i}"), str(tmp_path / "go"), "solve", "--data", "sklearn:iris", "--model", "knn", "--trials", str(BUDGET),
               "--folds", "2", "--study", name, "--storage", url, "--no-memory", "--no-sandbox", "--json"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return optuna.load_study(study_name=name, storage=studies.storage(url))


def _check(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    assert count_finished(trials) == BUDGET
    complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == len(set(complete)) == BUDGET  # every counted trial completed, none twice
    dead = retried(trials)
    for t in trials:  # anything else is a retried failure or a trial asked after the budget was full (never run)
        assert t.state == TrialState.COMPLETE or t.number in dead or t.user_attrs.get(SURPLUS), (t.number, t.state)
    assert sum(bool(t.user_attrs.get(SURPLUS)) for t in trials) <= 1
    assert {t.user_attrs.get("source") for t in trials if t.state == TrialState.COMPLETE} >= {"default"}
    assert _overlapping(study) >= 1  # both workers ran trials, at the same time


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_study_in_a_file(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'shared.log'}"
    _check(_workers(url, tmp_path, f"shared-{kind}"))


# ------------------------------------------------------------------------ PostgreSQL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    for found in [shutil.which("pg_ctl"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)]:
        if found and Path(found).with_name("initdb").exists():
            return Path(found).resolve().parent
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of its own in a temp folder, on 127.0.0.1 and a free port, as a
    non-root user (the `postgres` account when the tests run as root)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed (pip install 'psycopg[binary]')")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("the PostgreSQL server binaries (initdb, pg_ctl) are not installed (Debian: apt-get install postgresql)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="hyperpilot-pg-"))
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    run = dict(capture_output=True, text=True, timeout=120)
    made = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                           "--no-sync", "-E", "UTF8"], **run)  # type: ignore[call-overload]
    assert made.returncode == 0, made.stderr[-2000:]
    started = subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                              "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start"], **run)  # type: ignore[call-overload]
    assert started.returncode == 0, started.stderr[-2000:] + (folder / "log").read_text(errors="replace")[-2000:]
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], **run)  # type: ignore[call-overload]
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_study_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    _check(_workers(postgres_url, tmp_path, "shared-pg"))
    assert time.perf_counter() - t0 < 300


def _overlapping(study: optuna.Study) -> int:
    """Pairs of trials that ran at the same time (one worker runs one trial at a time)."""
    spans = [(t.datetime_start, t.datetime_complete) for t in study.trials if t.datetime_start and t.datetime_complete]
    return sum(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
