"""The hostile-code suite: each attack is a `custom_code` trial of one study run by the
default `SandboxExecutor`. Every attack must end as a FAIL trial with a clear reason,
leave no process behind, and the study must go on and finish. The static import gate is
bypassed on purpose (a proposer suggests the programs directly): the sandbox is the
boundary tested.

Trusted scoring: a program only ever returns predictions for rows whose labels it was
not given; the coordinator scores them. Programs that forge their score, patch the
metrics, return impossible predictions, hunt for the validation labels or outlive the
timeout in the refit are each run through a real solve."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from hyperpilot import studies
from hyperpilot.agent import Assistant
from hyperpilot.cards import get_model_card
from hyperpilot.core.cv import CrossValidation
from hyperpilot.core.proposer import Proposer, StudyContext
from hyperpilot.core.types import Suggestion, TrialRecord
from hyperpilot.data import load_dataset, split
from hyperpilot.errors import HyperpilotError, TrialError
from hyperpilot.sandbox import InProcessExecutor, Limits, Sandbox, SandboxExecutor, layers
from hyperpilot.sandbox.runner import shared_sandbox
from hyperpilot.task import Task
from hyperpilot.trainers.code import CUSTOM_CODE, code_id

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
    """Suggests every attack (and one chatty but honest program), one per trial, right
    after the defaults: a `custom_code` trial with the default knobs and the program in
    its attrs, as `CodeProposer` does (but without its static checks)."""

    name = "attack"

    def __init__(self, programs: dict[str, str]) -> None:
        self.todo = list(programs.items())

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        if not self.todo:
            return None
        name, code = self.todo.pop(0)
        return Suggestion(CUSTOM_CODE, get_model_card(CUSTOM_CODE).default_config(), "attack",
                          attrs={"code_id": code_id(code), "code": code, "attack": name})


def survivors() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if MARK in " ".join(p.info["cmdline"] or [])]


def sandboxes(ex: SandboxExecutor) -> list[Sandbox]:
    """The executor's sandboxes: trusted trainers' and programs' (which never share one)."""
    return [ex.sandbox, shared_sandbox(ex.limits, ex.layer, 0, untrusted=True)]


def trial_processes(sandbox: Sandbox) -> list[psutil.Process]:
    """Processes of the sandbox besides its own chain (sh/bwrap/bwrap-init/worker)."""
    worker = sandbox._worker  # noqa: SLF001 - white-box check of the process tree
    if worker is None:
        return []
    tree = [psutil.Process(worker.proc.pid), *psutil.Process(worker.proc.pid).children(recursive=True)]
    workers = [p for p in tree if p.name().startswith("python") and "worker.py" in " ".join(p.cmdline())]
    return [c for w in workers for c in w.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]


def leftovers(ex: SandboxExecutor) -> list[psutil.Process]:
    return [p for s in sandboxes(ex) for p in trial_processes(s)]


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
    return Assistant(llm="none", memory=False, **kw)


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
        assert not leftovers(executor), f"trial {record.number} left a process in the sandbox"

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
    assert not survivors() and not leftovers(executor)
    assert result.report_path.exists()


def _kind_text(kind: str) -> str:
    return {
        "network": "network access is blocked", "filesystem": "sandbox", "processes": "process limit of",
        "leftovers": "left ", "memory": "memory cap of", "timeout": "timed out after",
    }[kind]


def _reports(into: list[tuple[int, dict[str, np.ndarray]]], stop_after: int | None = None) -> Any:
    def on_report(step: int, response: dict[str, np.ndarray]) -> bool:
        into.append((step, response))
        return stop_after is not None and step >= stop_after
    return on_report


def test_sandboxed_trial_predicts_like_in_process(executor: SandboxExecutor) -> None:
    d = load_dataset("sklearn:iris")
    task = Task(data="sklearn:iris", models=["decision_tree"], cv_folds=3).resolved("multiclass")
    cv = CrossValidation(executor, d.X, d.y, task)
    job = cv.job("decision_tree", get_model_card("decision_tree").default_config(), seed=7)
    sandboxed: list[tuple[int, dict[str, np.ndarray]]] = []
    local: list[tuple[int, dict[str, np.ndarray]]] = []
    res = executor.run(job, _reports(sandboxed))
    assert res.ok, res.error
    assert InProcessExecutor().run(job, _reports(local)).ok
    assert [s for s, _ in sandboxed] == [s for s, _ in local] == [0, 1, 2]  # one report per fold, in order
    for (step, a), (_, b) in zip(sandboxed, local, strict=True):
        assert set(a) == {"predict"} and len(a["predict"]) == len(cv.folds[step][1])  # predictions, never a score
        np.testing.assert_array_equal(a["predict"], b["predict"])
    assert res.attrs["sandbox"] == executor.sandbox.layer == layers.choose()


@pytest.mark.parametrize("program", [False, True])
def test_a_stop_on_the_report_channel_ends_the_job(program: bool, executor: SandboxExecutor) -> None:
    """A trusted trainer's folds run in one process that obeys the stop file; a program's
    run one process per fold, and the next one is never started."""
    d = load_dataset("sklearn:iris")
    model = CUSTOM_CODE if program else "decision_tree"
    task = Task(data="sklearn:iris", models=[model], cv_folds=3).resolved("multiclass")
    cv = CrossValidation(executor, d.X, d.y, task)
    code = "from sklearn.tree import DecisionTreeClassifier\ndef build(config):\n    return DecisionTreeClassifier()\n"
    job = cv.job(model, get_model_card(model).default_config(), seed=0, code=code if program else None)
    seen: list[tuple[int, dict[str, np.ndarray]]] = []
    res = executor.run(job, _reports(seen, stop_after=0))
    assert res.stopped and not res.ok and [s for s, _ in seen] == [0]
    assert not leftovers(executor)


def test_closing_the_executor_ends_its_worker() -> None:
    ex = SandboxExecutor(sandbox=Sandbox(Limits(wall_seconds=60), preload=()))
    out = ex.sandbox.run("hyperpilot.sandbox.job:exec_file", {"file": "p.py"}, files={"p.py": "RESULT = 3"})
    assert out.ok and out.value == 3, out.error
    worker = psutil.Process(ex.sandbox._worker.proc.pid)  # noqa: SLF001
    tree = [worker, *worker.children(recursive=True)]
    ex.close()
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


# -- trusted scoring --------------------------------------------------------------------------
FORGER = '''"""Predicts the majority class, and claims a perfect score every way it can."""
import json
import os
import sys

import numpy as np
from sklearn.dummy import DummyClassifier

CLAIM = {"value": 1.0, "score": 1.0, "accuracy": 1.0, "cv_score": 1.0}
for name in ("hyperpilot.sandbox.job", "_hyperpilot_sandbox_job"):  # the final result.json claims it too
    job = sys.modules.get(name)
    if job is not None:
        job._write = lambda run_dir, result, real=job._write: real(run_dir, {"ok": True, "value": CLAIM})


class Forger(DummyClassifier):
    def fit(self, X, y, sample_weight=None):
        y = np.asarray(y)
        os.makedirs("reports", exist_ok=True)
        for step in range(8):  # this fold's fit labels are the other fold's validation labels
            np.savez(f"reports/{step:05d}.npz", predict=y, proba=np.eye(3)[y], score=1.0, value=1.0)
        with open("result.json", "w") as f:
            json.dump({"ok": True, "value": CLAIM}, f)
        return super().fit(X, y, sample_weight)


def build(config):
    return Forger(strategy="most_frequent")
'''
PATCHER = '''"""Predicts the majority class after patching every scorer it can import."""
import sklearn.metrics

import hyperpilot.core.cv
import hyperpilot.core.scoring
from sklearn.dummy import DummyClassifier

sklearn.metrics.accuracy_score = lambda *args, **kw: 1.0
hyperpilot.core.scoring.score = lambda *args, **kw: 1.0
hyperpilot.core.scoring.checked_value = lambda metric, value: 1.0
hyperpilot.core.cv.score = lambda *args, **kw: 1.0


def build(config):
    return DummyClassifier(strategy="most_frequent")
'''
WILD_LABELS = '''import numpy as np
from sklearn.dummy import DummyClassifier


class Wild(DummyClassifier):
    def predict(self, X):
        return np.full(len(X), 7)


def build(config):
    return Wild()
'''
WILD_PROBA = WILD_LABELS.replace("def predict(self, X):\n        return np.full(len(X), 7)",
                                 "def predict_proba(self, X):\n        return np.full((len(X), 3), 42.0)")
LOOKUP = '''"""Predicts each row's label by looking it up in every labelled data it can find, and
leaves what it saw for the next fold's (or trial's) process."""
import ctypes
import glob
import os
import pickle
import platform

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

STORE = ["/tmp/hp-labels.pkl", os.path.expanduser("~/hp-labels.pkl"), "../hp-labels.pkl", "/dev/shm/hp-labels.pkl"]
SHM_KEY, SIZE = 0x4850, 1 << 20
KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(platform.machine())  # add_key, keyctl
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.syscall.restype = ctypes.c_long


def found():
    with open("data.pkl", "rb") as f:  # this fold's rows: labels of the rows it fits on only
        X_fit, y_fit, X_pred = pickle.load(f)
    out = [(X_fit, np.asarray(y_fit))]
    paths = set(STORE)
    for pattern in ("../../data/*", "../../*/*", "/tmp/**/*.bin", "/tmp/**/*.pkl", "/tmp/hyperpilot-sandbox-*/data/*"):
        paths.update(glob.glob(pattern, recursive=True))
    blobs = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                blobs.append(f.read())
        except OSError:
            pass
    shm = libc.shmget(SHM_KEY, SIZE, 0o666)  # System V shared memory an earlier process left
    if shm >= 0:
        addr = libc.shmat(shm, None, 0)
        blobs.append(ctypes.string_at(addr + 8, int.from_bytes(ctypes.string_at(addr, 8), "little")))
    if KEYCTL:  # the user keyring
        key = libc.syscall(KEYCTL[1], 10, ctypes.c_long(-4), b"user", b"hp-labels", 0)  # KEYCTL_SEARCH
        if key >= 0:
            buf = ctypes.create_string_buffer(SIZE)
            n = libc.syscall(KEYCTL[1], 11, ctypes.c_long(key), buf, SIZE)  # KEYCTL_READ
            blobs.append(buf.raw[:n])
    for blob in blobs:
        try:
            X, y = pickle.loads(blob)[:2]
            if isinstance(X, pd.DataFrame) and len(X) == len(y):
                out.append((X, np.asarray(y)))
        except Exception:
            pass
    return X_pred, out


def remember(seen):
    blob = pickle.dumps((pd.concat([X for X, _ in seen]), np.concatenate([y for _, y in seen])))
    for path in STORE:
        try:
            with open(path, "wb") as f:
                f.write(blob)
        except OSError:
            pass
    shm = libc.shmget(SHM_KEY, SIZE, 0o1000 | 0o666)
    if shm >= 0 and len(blob) + 8 <= SIZE:
        ctypes.memmove(libc.shmat(shm, None, 0), len(blob).to_bytes(8, "little") + blob, len(blob) + 8)
    if KEYCTL and len(blob) < 30000:
        libc.syscall(KEYCTL[0], b"user", b"hp-labels", blob, len(blob), ctypes.c_long(-4))


def rows(X):
    return [tuple(r) for r in np.round(X.to_numpy(dtype=float), 6)]


class Lookup(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.classes_ = np.unique(y)
        X_pred, seen = found()
        remember(seen)
        table = {}
        for Xk, yk in seen:
            table.update(zip(rows(Xk), yk.tolist()))
        self.answers_ = np.array([table.get(r, 0) for r in rows(X_pred)])
        return self

    def predict(self, X):
        return self.answers_ if len(X) == len(self.answers_) else np.zeros(len(X), dtype=int)


def build(config):
    return Lookup()
'''


def _cv(task: Task) -> CrossValidation:
    """The objective `Assistant.solve` scores `task` with (same split, same folds)."""
    task = task.resolved("multiclass")
    X_train, _, y_train, _ = split(load_dataset(task.data), task)
    return CrossValidation(InProcessExecutor(), X_train, y_train, task)


def _majority(cv: CrossValidation) -> list[float]:
    """Per fold, the accuracy of predicting the majority class of the fold's fit rows."""
    return [float(np.mean(cv.y[va] == np.bincount(cv.y[fit]).argmax())) for fit, va in cv.folds]


def _attacks(result: Any) -> dict[str, Any]:
    return {t.user_attrs["attack"]: t for t in studies.load_study(result.study_name).trials if "attack" in t.user_attrs}


def test_forged_scores_and_patched_metrics_are_not_believed(executor: SandboxExecutor) -> None:
    """(a) result.json and fake reports/*.npz claiming 1.0 (among them a perfect report for
    the other fold, whose labels this fold fits on); (b) sklearn.metrics and hyperpilot's
    scoring patched at import: both score what their real predictions give."""
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], cv_folds=2, n_trials=3, seed=1)
    result = _assistant(proposers=[Attacker({"forger": FORGER, "patcher": PATCHER})], executor=executor).solve(task)
    expected = _majority(_cv(task))
    assert max(expected) < 0.5
    for name, t in _attacks(result).items():
        assert t.state.name == "COMPLETE", (name, t.user_attrs.get("error"))
        assert t.user_attrs["fold_values"] == pytest.approx(expected), name
        assert t.value == pytest.approx(np.mean(expected)), name
    assert result.cv_score < 1.0 and result.best_model == CUSTOM_CODE  # the baseline program won, honestly


@pytest.mark.parametrize("metric, program, reason", [
    ("accuracy", WILD_LABELS, "predicted labels must be class codes 0..2"),
    ("log_loss", WILD_PROBA, "probabilities are outside [0, 1]"),
])
def test_impossible_predictions_fail_the_trial(metric: str, program: str, reason: str, executor: SandboxExecutor) -> None:
    """(c) labels outside the classes, probabilities of 42: a clear failure, never a value."""
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], metric=metric, cv_folds=2, n_trials=2, seed=2)
    result = _assistant(proposers=[Attacker({"wild": program})], executor=executor).solve(task)
    t = _attacks(result)["wild"]
    assert t.state.name == "FAIL" and t.value is None
    assert reason in t.user_attrs["error"], t.user_attrs["error"]
    assert "fold_values" not in t.user_attrs  # the first fold's predictions were rejected, not scored
    assert 0.0 <= result.cv_score <= (1.0 if metric == "accuracy" else 5.0)


def test_a_program_cannot_reach_the_labels_it_is_scored_on(executor: SandboxExecutor) -> None:
    """(d) Each fold's process is given only its fit labels. A program that looks every
    predicted row up in all the labelled data it can find (the sandbox's data folders, a
    trusted trial's shared dataset, /tmp) and leaves what it saw for the next fold's or
    trial's process (files, System V shared memory, the keyring) scores exactly what the
    fit labels of each fold give: near chance, not 1.0."""
    if executor.sandbox.layer != "bwrap":
        pytest.skip("only bubblewrap hides the files of the coordinator and of other sandboxes")
    programs = {"lookup": LOOKUP, "lookup_again": LOOKUP + "# a second trial, after the first left its labels\n"}
    task = Task(data="sklearn:iris", models=["decision_tree", CUSTOM_CODE], cv_folds=2, n_trials=4, seed=3)
    result = _assistant(proposers=[Attacker(programs)], executor=executor).solve(task)
    cv = _cv(task)
    X = cv.X.to_numpy(dtype=float).round(6)
    expected = []
    for fit, va in cv.folds:  # what a lookup in the fold's own fit rows gives (iris has a few duplicate rows)
        table = {tuple(r): int(c) for r, c in zip(X[fit], cv.y[fit], strict=True)}
        expected.append(float(np.mean([table.get(tuple(r), 0) == c for r, c in zip(X[va], cv.y[va], strict=True)])))
    assert max(expected) < 0.5
    trials = _attacks(result)
    assert set(trials) == set(programs)
    for name, t in trials.items():
        assert t.state.name == "COMPLETE", (name, t.user_attrs.get("error"))
        assert t.user_attrs["fold_values"] == pytest.approx(expected), name


SLEEPY = '''import time

from sklearn.discriminant_analysis import LinearDiscriminantAnalysis


class Sleepy(LinearDiscriminantAnalysis):
    def fit(self, X, y):
        if len(X) > 90:  # a fold fits on 60 rows; only the refit sees all 120
            time.sleep(600)
        return super().fit(X, y)


def build(config):
    return Sleepy()
'''


def test_a_refit_that_outlives_the_trial_timeout_is_stopped() -> None:
    """(e) The best program sleeps only when it is refit on every training row: the refit
    runs under the same trial timeout, and solve fails with a clear error in about that time."""
    timeout = 6
    ex = SandboxExecutor(TEST_LIMITS, trial_timeout=timeout)
    finished: list[float] = []
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], cv_folds=2, n_trials=2, seed=0)
    assistant = _assistant(proposers=[Attacker({"sleepy": SLEEPY})], executor=ex,
                           on_trial=lambda record: finished.append(time.perf_counter()))
    with pytest.raises(TrialError, match=f"refitting the best config failed: timed out after {timeout} s") as e:
        assistant.solve(task)
    assert isinstance(e.value, HyperpilotError) and "\n" not in str(e.value)
    waited = time.perf_counter() - finished[-1]
    assert waited < timeout + 20, f"the refit was stopped after {waited:.1f} s"
    (summary,) = studies.list_studies()  # each test has its own HYPERPILOT_HOME
    best = studies.load_study(summary.study_name).best_trial
    assert best.user_attrs.get("attack") == "sleepy", "the sleeping program must be the best trial for this test"
    assert not leftovers(ex)


SHADOW = "root:$6$Gx9Qm1ZtS3cr3tS4$Vd8Yk2hf0sJ3Q0h5rEzq1wB9ZLwqgkX7cP9Xy8mQ3lAbC:19700:0:99999:7:::"
TOKEN = "c2stbGl2ZS1zZWNyZXQtdG9rZW4tMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="
LEAKY = '''import pandas as pd


def build(config):
    lines = pd.read_csv({path!r}, sep="\\x01", header=None)[0]
    raise ValueError(" ".join(lines) + " read from {path}")
'''
FIXED = "from sklearn.tree import DecisionTreeClassifier\n\n\ndef build(config):\n    return DecisionTreeClassifier()\n"


def test_what_a_weak_layer_lets_a_program_read_never_reaches_the_llm(tmp_path: Path) -> None:
    """Under unshare a program (one the code gate accepts) reads a shadow-like file and
    raises with its content: the repair prompt sent to the code writer and the study's
    attributes carry the exception type and a scrubbed line, not the file."""
    from hyperpilot.agent.code_proposer import CodeProposer

    if not layers.unshare_status()[0]:
        pytest.skip("unshare does not work here")
    secret = tmp_path / "shadow"
    secret.write_text(f"{SHADOW}\n{TOKEN}\n")
    prompts: list[str] = []

    def writer(prompt: str) -> str:
        prompts.append(prompt)
        return "```python\n" + (FIXED if prompt.startswith("Your program failed") else LEAKY.format(path=str(secret))) + "```"

    ex = SandboxExecutor(TEST_LIMITS, layer="unshare", trial_timeout=30)
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], cv_folds=2, n_trials=3, seed=0)
    result = _assistant(proposers=[CodeProposer(writer, max_programs=1, max_repairs=1)], executor=ex).solve(task)
    failed = [t for t in studies.load_study(result.study_name).trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and len(prompts) == 2 and prompts[1].startswith("Your program failed")
    stored = str(failed[0].user_attrs)
    assert "ValueError: <redacted> <redacted> read from <path>" in failed[0].user_attrs["error"]
    for text in (prompts[1], stored, str(studies.load_study(result.study_name).user_attrs)):
        for leaked in ("$6$", "Gx9Qm1", "19700:0:99999", TOKEN[:20]):
            assert leaked not in text, (leaked, text)
    assert "ValueError: <redacted>" in prompts[1]
