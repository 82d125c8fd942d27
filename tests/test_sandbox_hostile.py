"""The hostile-code suite: each attack is a `custom_code` trial of one study run by the
default `SandboxExecutor`. Every attack must end as a FAIL trial with a clear reason,
leave no process behind, and the study must go on and finish. The static import gate is
bypassed on purpose (programs are stored directly): the sandbox is the boundary tested."""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from hyperpilot import studies
from hyperpilot.agent import Assistant, Proposer, SolveContext, TrialRecord
from hyperpilot.cards import get_model_card
from hyperpilot.data import load_dataset
from hyperpilot.sandbox import Limits, Sandbox, SandboxExecutor, layers
from hyperpilot.task import Task
from hyperpilot.tools import InProcessExecutor
from hyperpilot.trainers.code import CUSTOM_CODE, save_program

TEST_LIMITS = Limits(wall_seconds=120, memory_mb=3072, max_processes=32)
MARK = "876543"
SECRET = "sk-parent-secret-4242"
OK = "    return DummyClassifier(strategy='prior')  # reached only if the sandbox let the attack through\n"
HEAD = "import os, socket, time\nfrom sklearn.dummy import DummyClassifier\n"
SETSID = f"""    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "{MARK}"])
        os._exit(0)
    time.sleep(0.2)
"""


def attacks(tmp: Path, port: int) -> dict[str, tuple[str, set[str]]]:
    """name -> (program, the failure kinds that count as "blocked with a clear reason")."""
    parent = os.getpid()
    return {
        "connect_loopback": (f"def build(config):\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n{OK}", {"network"}),
        "resolve_dns": ("def build(config):\n    socket.getaddrinfo('pypi.org', 443)\n" + OK, {"network"}),
        "write_outside": (f"def build(config):\n    open({str(tmp / 'escaped.txt')!r}, 'w').write('x')\n{OK}", {"filesystem"}),
        "read_secret": (f"def build(config):\n    open({str(tmp / 'secret.txt')!r}).read()\n{OK}", {"filesystem"}),
        "parent_environ": (
            "def build(config):\n"
            f"    if {SECRET!r} in str(dict(os.environ)):\n        return DummyClassifier()\n"
            f"    data = open('/proc/{parent}/environ', 'rb').read()  # any byte of it is a breach\n"
            f"    if not data:\n        raise PermissionError(13, 'the parent environ is empty to us')\n{OK}",
            {"filesystem"},
        ),
        "fork_bomb": ("def build(config):\n    for _ in range(300):\n        if os.fork() == 0:\n"
                      "            time.sleep(60)\n            os._exit(0)\n" + OK, {"processes", "leftovers"}),
        "allocate_beyond_cap": ("import numpy as np\ndef build(config):\n    a = np.ones(16 * 1024**3, dtype=np.uint8)\n" + OK,
                                {"memory"}),
        "loop_forever": ("def build(config):\n" + SETSID + "    while True:\n        pass\n", {"timeout"}),
        "setsid_grandchild": ("def build(config):\n" + SETSID + OK, {"leftovers"}),
    }


CHATTY = HEAD + "import sys\ndef build(config):\n    for _ in range(20):\n        sys.stdout.write('y' * 1_000_000)\n" + OK


class Attacker(Proposer):
    """Queues every attack (and one chatty but honest program) right after the defaults."""

    name = "code"

    def __init__(self, programs: dict[str, str]) -> None:
        self.programs = programs
        self.by_number: dict[int, str] = {}

    def start(self, ctx: SolveContext) -> None:
        default = get_model_card(CUSTOM_CODE).default_config()
        for name, code in self.programs.items():
            program = save_program(str(ctx.task.study_name), code)
            ctx.space.enqueue(ctx.study, CUSTOM_CODE, default, self.name, code_id=program.code_id, code=code, attack=name)


def survivors() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if MARK in " ".join(p.info["cmdline"] or [])]


def trial_processes(sandbox: Sandbox) -> list[psutil.Process]:
    """Processes of the sandbox besides its own chain (sh/bwrap/bwrap-init/worker)."""
    worker = sandbox._worker  # noqa: SLF001 - white-box check of the process tree
    if worker is None:
        return []
    tree = [psutil.Process(worker.proc.pid), *psutil.Process(worker.proc.pid).children(recursive=True)]
    workers = [p for p in tree if p.name().startswith("python") and "worker.py" in " ".join(p.cmdline())]
    return [c for w in workers for c in w.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="module")
def executor() -> Iterator[SandboxExecutor]:
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the worker's OpenMP: no spin-waiting on a shared CPU
    ex = SandboxExecutor(TEST_LIMITS, trial_timeout=4)  # the process-wide sandbox test_code.py uses too
    yield ex
    ex.close()
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before


def _assistant(**kw: Any) -> Assistant:
    params = inspect.signature(Assistant).parameters
    extra = {k: v for k, v in (("llm", "none"), ("memory", False)) if k in params}
    return Assistant(**kw, **extra)


def test_hostile_programs_fail_cleanly_and_the_study_finishes(executor: SandboxExecutor, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERPILOT_TEST_API_KEY", SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    suite = attacks(tmp_path, listener.getsockname()[1])
    programs = {name: HEAD + code for name, (code, _) in suite.items()} | {"chatty": CHATTY}
    seen: list[TrialRecord] = []

    def on_trial(record: TrialRecord) -> None:
        seen.append(record)
        assert not survivors(), f"trial {record.number} left a process behind"
        assert not trial_processes(executor.sandbox), f"trial {record.number} left a process in the sandbox"

    n_trials = 2 + len(programs) + 1
    task = Task(data="sklearn:iris", models=["decision_tree", CUSTOM_CODE], cv_folds=2, n_trials=n_trials, seed=1)
    try:
        result = _assistant(proposers=[Attacker(programs)], executor=executor, on_trial=on_trial).solve(task)
    finally:
        listener.close()

    assert result.n_trials == n_trials and len(seen) == n_trials
    trials = {t.user_attrs.get("attack"): t for t in studies.load_study(result.study_name).trials if t.user_attrs.get("attack")}
    assert set(trials) == set(programs)
    for name, (_, kinds) in suite.items():
        t = trials[name]
        assert t.state.name == "FAIL", f"{name} was not blocked: {t.user_attrs}"
        error = t.user_attrs["error"]
        assert any(_kind_text(k) in error for k in kinds), f"{name}: unclear reason {error!r}"
    assert "timed out after 4 s" in trials["loop_forever"].user_attrs["error"]
    assert trials["chatty"].state.name == "COMPLETE", trials["chatty"].user_attrs.get("error")
    assert not (tmp_path / "escaped.txt").exists()
    assert not survivors() and not trial_processes(executor.sandbox)
    assert result.report_path.exists()


def _kind_text(kind: str) -> str:
    return {
        "network": "network access is blocked", "filesystem": "sandbox", "processes": "process limit of",
        "leftovers": "left ", "memory": "memory cap of", "timeout": "timed out after",
    }[kind]


def test_sandboxed_trial_scores_like_in_process(executor: SandboxExecutor) -> None:
    d = load_dataset("sklearn:iris")
    task = Task(data="sklearn:iris", models=["decision_tree"], cv_folds=3).resolved("multiclass")
    config = get_model_card("decision_tree").default_config()
    sandboxed = executor.run("decision_tree", config, d.X, d.y, task)
    local = InProcessExecutor().run("decision_tree", config, d.X, d.y, task)
    assert sandboxed.ok, sandboxed.error
    assert sandboxed.evaluation.value == pytest.approx(local.evaluation.value)
    assert executor.sandbox.layer == layers.choose()


def test_closing_the_executor_ends_its_worker() -> None:
    ex = SandboxExecutor(sandbox=Sandbox(Limits(wall_seconds=60), preload=()))
    out = ex.sandbox.run("hyperpilot.sandbox.job:exec_file", {"file": "p.py"}, files={"p.py": "RESULT = 3"})
    assert out.ok and out.value == 3, out.error
    worker = psutil.Process(ex.sandbox._worker.proc.pid)  # noqa: SLF001
    tree = [worker, *worker.children(recursive=True)]
    ex.close()
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
