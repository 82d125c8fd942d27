"""The sandbox runner: results as files, minimal environment, caps, whole-tree kill, the
fallback layers (forced by argument or $HYPERPILOT_SANDBOX), doctor, GPU pass-through and
the executor. Hostile programs run through whole studies in test_sandbox_hostile.py."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from hyperpilot.sandbox import Limits, Sandbox, SandboxError, layers
from hyperpilot.sandbox.handle import PASS_ENV

EXEC = "hyperpilot.sandbox.job:exec_file"
MARK = "987654"  # in the argv of every process a test leaves behind, to find survivors

DOUBLE_FORK = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{MARK}"])
    os._exit(0)
time.sleep(0.2)
"""


def survivors() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if MARK in " ".join(p.info["cmdline"] or []):
            out.append(p)
    return out


def run(sb: Sandbox, code: str, **kw: object) -> object:
    return sb.run(EXEC, {"file": "p.py"}, files={"p.py": code}, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Limits(wall_seconds=20, memory_mb=4096, max_processes=64), preload=()) as sb:
        yield sb


def test_result_comes_from_the_file_and_the_env_is_minimal(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-parent-secret")
    code = 'import os, json\nprint(json.dumps({"ok": True, "value": "forged"}))\nRESULT = dict(os.environ)'
    res = run(sandbox, code)
    assert res.ok, res.error
    assert "OPENAI_API_KEY" not in res.value and "sk-fake" not in str(res.value)
    assert set(res.value) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND", "MPLCONFIGDIR",
                              "CUDA_VISIBLE_DEVICES", "LC_CTYPE", *PASS_ENV}
    assert res.stdout_tail.startswith('{"ok": true, "value": "forged"}')


def test_each_job_gets_a_fresh_run_dir(sandbox: Sandbox) -> None:
    tmp = '__import__("tempfile").gettempdir()'
    first = run(sandbox, f'import os\nopen("mine.txt", "w").write("x")\nopen(os.path.join({tmp}, "junk"), "w")\nRESULT = os.getcwd()')
    second = run(sandbox, f'import os\nRESULT = [os.getcwd(), os.path.exists("mine.txt"), os.path.exists(os.path.join({tmp}, "junk"))]')
    assert first.ok and second.ok, (first.error, second.error)
    assert first.value != second.value[0] and second.value[1] is False and second.value[2] is False


def test_megabytes_of_output_do_not_hang_the_runner(sandbox: Sandbox) -> None:
    start = time.monotonic()
    res = run(sandbox, 'import sys\nfor _ in range(40):\n    sys.stdout.write("x" * 1_000_000)\nRESULT = 1')
    assert res.ok and res.value == 1
    assert res.details["stdout_dropped"] > 30_000_000
    assert time.monotonic() - start < 30


def test_timeout_kills_the_whole_tree(sandbox: Sandbox) -> None:
    res = run(sandbox, DOUBLE_FORK + "\nwhile True:\n    pass", timeout=1.5)
    assert not res.ok and res.kind == "timeout"
    assert res.error.startswith("timed out after 1.5 s")
    assert not survivors()


def test_a_setsid_grandchild_fails_the_job_and_is_killed(sandbox: Sandbox) -> None:
    res = run(sandbox, DOUBLE_FORK + "\nRESULT = 1")
    assert not res.ok and res.kind == "leftovers"
    assert f"sleep {MARK}" in res.error and "killed" in res.error
    assert not survivors()


def test_a_dead_worker_is_replaced(sandbox: Sandbox) -> None:
    res = run(sandbox, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)")
    assert not res.ok and res.kind == "sandbox"
    again = run(sandbox, "RESULT = 2")
    assert again.ok and again.value == 2


def test_collect_reads_back_files_and_refuses_symlinks(sandbox: Sandbox) -> None:
    ok = sandbox.run(EXEC, {"file": "p.py"}, files={"p.py": 'open("out.bin", "wb").write(b"abc")'}, collect=("out.bin",))
    assert ok.ok and ok.files == {"out.bin": b"abc"}
    bad = sandbox.run(EXEC, {"file": "p.py"}, files={"p.py": 'import os\nos.symlink("/etc/passwd", "out.bin")'},
                      collect=("out.bin",))
    assert not bad.ok and "out.bin" in bad.error


def _listener() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv


@pytest.mark.parametrize("layer", ["unshare", "plain"])
def test_fallback_layers_kill_the_tree_and_catch_leftovers(layer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if layer == "unshare" and not layers.unshare_status()[0]:
        pytest.skip("unshare does not work here")
    monkeypatch.setenv(layers.ENV_LAYER, layer)
    with Sandbox(Limits(wall_seconds=20), preload=(), cgroup=False) as sb:
        assert sb.layer == layer
        timed = run(sb, DOUBLE_FORK + "\nwhile True:\n    pass", timeout=1.5)
        assert timed.kind == "timeout" and not survivors()
        left = run(sb, DOUBLE_FORK + "\nRESULT = 1")
        assert left.kind == "leftovers" and not survivors()
        srv = _listener()
        try:
            net = run(sb, f"import socket\nsocket.create_connection(('127.0.0.1', {srv.getsockname()[1]}), timeout=2)\nRESULT = 'connected'")
        finally:
            srv.close()
        if layer == "unshare":
            assert net.kind == "network", net.error
        else:  # documented: plain has no network namespace
            assert net.ok and net.value == "connected"


def test_plain_layer_with_a_cgroup_bounds_a_fork_bomb() -> None:
    if not layers.CgroupV1.available().get("pids"):
        pytest.skip("no writable pids cgroup here")
    bomb = f"import os, time\nfor _ in range(400):\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\nRESULT = 'unbounded'  # {MARK}"
    with Sandbox(Limits(wall_seconds=20, max_processes=32), "plain", preload=(), cgroup=True) as sb:
        res = run(sb, bomb)
    assert res.kind == "processes", res.error
    assert "process limit of 32" in res.error


def test_forcing_a_missing_layer_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layers, "bwrap_status", lambda: (False, False, "not installed (apt-get install bubblewrap)"))
    with pytest.raises(SandboxError, match="bwrap was asked for but not installed"):
        layers.choose("bwrap")
    assert layers.choose("auto") in ("unshare", "plain")
    with pytest.raises(SandboxError, match="unknown sandbox layer"):
        layers.choose("docker")


def test_doctor_reports_every_layer() -> None:
    names = [c.name for c in layers.doctor()]
    for expected in ("bubblewrap", "unshare (fallback)", "cgroup v1 memory", "cgroup v1 pids", "GPU pass-through", "layer in use"):
        assert expected in names


@pytest.mark.skipif(not layers.gpu_indices(), reason="no NVIDIA GPU on this machine")
def test_gpu_is_passed_through() -> None:
    gpus = layers.gpu_indices()[:1]
    with Sandbox(Limits(wall_seconds=60, gpus=gpus), preload=()) as sb:
        res = run(sb, "import os, glob\nRESULT = [os.environ['CUDA_VISIBLE_DEVICES'], sorted(glob.glob('/dev/nvidia*'))]")
    assert res.ok, res.error
    assert res.value[0] == str(gpus[0]) and f"/dev/nvidia{gpus[0]}" in res.value[1]


def test_cli_doctor_trial_timeout_and_a_loud_no_sandbox() -> None:
    from typer.testing import CliRunner

    from hyperpilot.cli import app

    env = {"HYPERPILOT_LLM": "none", "COLUMNS": "240", "OMP_NUM_THREADS": "1"}
    runner = CliRunner()
    doctor = runner.invoke(app, ["doctor"], env=env)
    assert doctor.exit_code == 0 and "layer in use" in doctor.output and "bubblewrap" in doctor.output
    base = ["solve", "--data", "sklearn:iris", "--model", "decision_tree", "--trials", "2", "--folds", "2", "--no-memory"]
    bad = runner.invoke(app, [*base, "--trial-timeout", "0"], env=env)
    assert bad.exit_code == 2 and "--trial-timeout must be > 0 seconds" in bad.output
    off = runner.invoke(app, [*base, "--no-sandbox"], env=env)
    assert off.exit_code == 0, off.output
    assert "WARNING: the sandbox is OFF (--no-sandbox)" in off.output


def test_roots_of_dead_processes_are_swept(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile
    from pathlib import Path

    from hyperpilot.sandbox import runner

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(str(tmp_path)) / f"{runner.ROOT_PREFIX}{dead.pid}-abc"
    alive = Path(str(tmp_path)) / f"{runner.ROOT_PREFIX}{os.getpid()}-abc"
    for folder in (stale, alive):
        (folder / "runs").mkdir(parents=True)
    with Sandbox(Limits(wall_seconds=10), "plain", preload=(), cgroup=False) as sb:
        assert run(sb, "RESULT = 1").ok
    assert not stale.exists() and alive.exists()


# -- disk quota --------------------------------------------------------------------------------
FILL_RUN_DIR = "for i in range(3):\n    with open(f'f{i}.bin', 'wb') as f:\n        for _ in range(5):\n            f.write(b'x' * (8 << 20))\nRESULT = 'wrote'"
FILL_DELETED = ("import os, time\nheld = []\nfor i in range(3):\n    f = open(f'd{i}.bin', 'wb')\n    os.unlink(f'd{i}.bin')\n"
                "    held.append(f)\n    for _ in range(5):\n        f.write(b'x' * (8 << 20))\n    f.flush()\ntime.sleep(2)\nRESULT = 'hidden'")
MANY_FILES = "for i in range(20000):\n    open(f'e{i}', 'w').close()\nRESULT = 'inodes'"  # 4 KiB each: 78 MiB
FILL_TMP = ("import tempfile\nfor i in range(3):\n    with open(f'/tmp/t{i}.bin', 'wb') as f:\n        for _ in range(5):\n"
            "            f.write(b'x' * (8 << 20))\nRESULT = 'tmp'")


@pytest.mark.parametrize("layer", [None, "plain"])
def test_disk_quota_counts_every_file_of_the_run_dir(layer: str | None) -> None:
    """Three 40 MiB files (each under the cap), three deleted-but-open ones, 20000 empty
    ones: over a 64 MiB quota in total, so the whole tree is killed; the parent's own files
    do not count."""
    with Sandbox(Limits(wall_seconds=20, max_disk_mb=64), layer, preload=(), cgroup=False) as sb:
        for code in (FILL_RUN_DIR, FILL_DELETED, MANY_FILES):
            res = run(sb, code)
            assert not res.ok and res.kind == "disk", res.error
            assert res.error.startswith("disk quota of 64 MiB exceeded") and "killed" in res.error
        big = sb.run(EXEC, {"file": "p.py"}, files={"p.py": "RESULT = len(open('given.bin', 'rb').read())",
                                                  "given.bin": b"y" * (80 << 20)})
        assert big.ok and big.value == 80 << 20, big.error
        small = run(sb, "open('out.txt', 'w').write('x' * 100_000)\nRESULT = 1")
        assert small.ok, small.error
        if sb.layer == "bwrap":  # the private /tmp is a 64 MiB tmpfs, and counted
            tmp = run(sb, FILL_TMP)
            assert not tmp.ok and tmp.kind == "disk" and "disk quota of 64 MiB exceeded" in tmp.error, tmp.error


def test_disk_quota_is_a_limit_with_a_default_and_caps_each_file(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Limits().max_disk_mb == 1024
    assert Limits(max_disk_mb=100, max_file_mb=500).rlimits()["RLIMIT_FSIZE"] == 100 << 20
    assert "RLIMIT_FSIZE" not in Limits(max_disk_mb=None, max_file_mb=None).rlimits()
    monkeypatch.setenv("HYPERPILOT_TRIAL_DISK_MB", "300")
    assert Limits().max_disk_mb == 300
    with pytest.raises(SandboxError, match="max_disk_mb must be > 0"):
        Limits(max_disk_mb=0)


# -- memory ---------------------------------------------------------------------------------------
def test_the_default_memory_cap_comes_from_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperpilot.sandbox import limits

    monkeypatch.delenv(limits.ENV_MEMORY, raising=False)
    available = limits.available_memory_mb()
    assert available <= psutil.virtual_memory().total >> 20
    assert Limits().memory_mb == max(2048, int(available * 0.75))
    assert Limits() == Limits()  # measured once: shared sandboxes are keyed by their limits
    monkeypatch.setattr(limits, "available_memory_mb", lambda: 1000)  # a busy machine: the floor
    assert Limits().memory_mb == 2048
    monkeypatch.setattr(limits, "available_memory_mb", lambda: 40000)
    assert Limits().memory_mb == 30000
    monkeypatch.setenv(limits.ENV_MEMORY, "3000")
    assert Limits().memory_mb == 3000 and Limits(memory_mb=1234).memory_mb == 1234
    monkeypatch.setenv(limits.ENV_MEMORY, "lots")
    with pytest.raises(SandboxError, match="HYPERPILOT_TRIAL_MEMORY_MB must be a whole number"):
        Limits()


def test_cli_trial_memory_sets_the_cap() -> None:
    from typer.testing import CliRunner

    from hyperpilot import cli

    executor = cli._executor(False, None, 1, 1500)  # noqa: SLF001
    assert executor.limits.memory_mb == 1500 and executor.limits.gpus == (layers.gpu_indices() or None)
    assert cli._executor(False, None, 1).limits is None  # noqa: SLF001 - the default Limits
    runner = CliRunner()
    for command in ("solve", "resume", "demo"):
        assert "--trial-memory" in runner.invoke(cli.app, [command, "--help"], env={"COLUMNS": "240"}).output
    bad = runner.invoke(cli.app, ["solve", "--data", "sklearn:iris", "--trial-memory", "0"], env={"HYPERPILOT_LLM": "none"})
    assert bad.exit_code == 2 and "--trial-memory" in bad.output


OOM = """
import os, time
r, w = os.pipe()
for _ in range(4):  # 4 x 300 MiB: each under the 512 MiB address-space cap
    if os.fork() == 0:
        block = b"\\x01" * (300 << 20)
        os.write(w, b"+")
        time.sleep(60)
        os._exit(0)
ready = b""
while len(ready) < 4:
    ready += os.read(r, 4)
with open("/proc/self/oom_score_adj", "w") as f:  # the OOM killer's first choice: this process
    f.write("1000")
mine = [b"\\x02" * (16 << 20) for _ in range(28)]  # 448 MiB more: over the group's 512 + 1024 MiB
RESULT = "survived"
"""


@pytest.mark.parametrize("layer", [None, "plain"])
def test_the_cgroup_oom_killer_is_reported_as_the_memory_cap(layer: str | None) -> None:
    """Processes that each stay under the address-space cap but together fill the cgroup:
    its OOM killer ends the trial, read from memory.oom_control (failcnt stays 0 here)."""
    if not layers.CgroupV1.available().get("memory"):
        pytest.skip("no writable memory cgroup here")
    with Sandbox(Limits(wall_seconds=30, memory_mb=512, max_processes=32), layer, preload=(), cgroup=True) as sb:
        res = run(sb, OOM)
        assert not res.ok and res.kind == "memory", res.error
        assert res.error.startswith("memory cap of 512 MiB exceeded"), res.error
        assert sb._worker is not None and sb._worker.cgroup is not None and sb._worker.cgroup.oom_kills() >= 1  # noqa: SLF001
        assert run(sb, "RESULT = 5").value == 5  # the same worker goes on
    assert not survivors()


# -- cgroups ----------------------------------------------------------------------------------------
def test_cgroups_are_removed_on_close_and_stale_ones_swept() -> None:
    from hyperpilot.sandbox.cgroup import PREFIX, STALE_AFTER_S

    bases = layers.CgroupV1.available()
    if not bases:
        pytest.skip("no writable cgroup here")
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    old = time.time() - STALE_AFTER_S - 60
    stale = [base / f"{PREFIX}{dead.pid}-stale" for base in bases.values()]
    young = [base / f"{PREFIX}{dead.pid}-young" for base in bases.values()]
    owned = [base / f"{PREFIX}{alive.pid}-owned" for base in bases.values()]
    try:
        for path in stale + young + owned:
            path.mkdir()
        for path in stale + owned:
            os.utime(path, (old, old))
        with Sandbox(Limits(wall_seconds=10), "plain", preload=(), cgroup=True) as sb:
            assert run(sb, "RESULT = 1").ok
            assert sb._worker is not None and sb._worker.cgroup is not None  # noqa: SLF001
            mine = list(sb._worker.cgroup.paths.values())  # noqa: SLF001
            assert mine and all(p.is_dir() for p in mine)
        assert not any(p.exists() for p in mine)  # closed: its groups are gone
        assert not any(p.exists() for p in stale)  # owner dead, empty, old: swept
        assert all(p.exists() for p in young + owned)  # maybe about to be used / owner alive
    finally:
        alive.kill()
        alive.wait()
        for path in stale + young + owned:
            try:
                path.rmdir()
            except OSError:
                pass


# -- weak layers -----------------------------------------------------------------------------------
def test_weak_layers_warn_once_and_say_what_is_not_isolated(caplog: pytest.LogCaptureFixture) -> None:
    from hyperpilot.sandbox import SandboxExecutor, warn_weak_sandbox

    caplog.set_level("WARNING", logger="hyperpilot.sandbox")
    text = warn_weak_sandbox(SandboxExecutor(layer="plain"))
    assert text is not None and "'plain' is weaker than bubblewrap" in text and "signal (kill) this process" in text
    assert "install bubblewrap" in text and "\n" not in text
    assert [r.getMessage() for r in caplog.records] == [text]
    if layers.unshare_status()[0]:
        text = warn_weak_sandbox(SandboxExecutor(layer="unshare"))
        assert text is not None and "CAN read this machine's files" in text
    if layers.bwrap_status()[0]:
        assert warn_weak_sandbox(SandboxExecutor(layer="bwrap")) is None
    assert warn_weak_sandbox(object()) is None


def test_a_plain_trial_runs_in_a_session_and_group_of_its_own() -> None:
    code = "import os, signal\nRESULT = [os.getsid(0), os.getpgid(0)]"
    with Sandbox(Limits(wall_seconds=10), "plain", preload=(), cgroup=False) as sb:
        res = run(sb, code)
        assert res.ok, res.error
        assert res.value[0] not in (os.getsid(0), os.getpgid(0)) and res.value[1] not in (os.getsid(0), os.getpgid(0))
        killed = run(sb, "import os, signal\nos.killpg(0, signal.SIGKILL)")  # its own group: not this process
        assert not killed.ok and killed.kind == "crash"


SHADOW = "root:$6$Gx9Qm1ZtS3cr3tS4$Vd8Yk2hf0sJ3Q0h5rEzq1wB9ZLwqgkX7cP9Xy8mQ3lAbC:19700:0:99999:7:::"
TOKEN = "c2stbGl2ZS1zZWNyZXQtdG9rZW4tMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A="


def test_failure_text_carries_no_file_content(tmp_path: object) -> None:
    """Under unshare a trial can read files: what it raises, a traceback whose frames claim
    to be in a secret file (the summary would quote its lines), and a forged result.json
    all come back as an exception type, a short scrubbed line and frame lines."""
    from pathlib import Path

    layer = "unshare" if layers.unshare_status()[0] else "plain"
    secret = Path(str(tmp_path)) / "shadow"
    secret.write_text(f"{SHADOW}\n{TOKEN}\n")
    raising = f"data = open({str(secret)!r}).read().split()\nraise ValueError(' '.join(data) + ' in {secret}')"
    framed = f"exec(compile('raise KeyError(1)', {str(secret)!r}, 'exec'))"
    forged = ("import json, os\njson.dump({'ok': False, 'error_type': 'ValueError', 'error': open(" + repr(str(secret))
              + ").read(), 'where': 'x', 'traceback': 'ValueError\\n    ' + open(" + repr(str(secret)) + ").read()}, "
              "open('result.json', 'w'))\nos._exit(0)")
    with Sandbox(Limits(wall_seconds=20), layer, preload=(), cgroup=False) as sb:
        results = [sb.run(EXEC, {"file": "p.py"}, files={"p.py": code}, focus="p.py") for code in (raising, framed, forged)]
    for res in results:
        assert not res.ok
        text = res.error + res.traceback + res.where  # the traceback quotes the program's own lines, no others
        for leaked in ("$6$", "Gx9Qm1", "19700", TOKEN[:20]):
            assert leaked not in text, (leaked, text)
        assert str(tmp_path) not in res.error and len(res.error) < 300, res.error
    assert results[0].error == "ValueError: <redacted> <redacted> in <path>"
    assert "    raise ValueError(' '.join(data)" in results[0].traceback  # from the parent's copy of p.py
    assert results[1].traceback.endswith("  shadow, line 1, in <module>")  # its line is not quoted
    assert results[2].error == "ValueError: <redacted>" and results[2].where == ""


def test_cli_shows_the_weak_layer_warning_once_per_solve() -> None:
    from typer.testing import CliRunner

    from hyperpilot.cli import app

    env = {"HYPERPILOT_LLM": "none", "COLUMNS": "240", "OMP_NUM_THREADS": "1", layers.ENV_LAYER: "plain"}
    out = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--model", "decision_tree", "--trials", "1",
                                   "--folds", "2", "--no-memory"], env=env)
    assert out.exit_code == 0, out.output
    assert out.output.count("WARNING: sandbox layer 'plain' is weaker than bubblewrap") == 1, out.output
    assert "signal (kill) this process" in out.output and "install bubblewrap" in out.output


@pytest.mark.parametrize("layer", [None, "plain"])
def test_a_worker_outlives_the_thread_that_started_it(layer: str | None) -> None:
    """The layers' parent-death signal fires when the starting *thread* ends: a worker first
    used by a study loop's trial thread must still serve the refit in the main thread."""
    import threading

    with Sandbox(Limits(wall_seconds=10), layer, preload=(), cgroup=False) as sb:
        thread = threading.Thread(target=lambda: run(sb, "RESULT = 1"))
        thread.start()
        thread.join()
        assert sb._worker is not None  # noqa: SLF001
        pid = sb._worker.proc.pid  # noqa: SLF001
        time.sleep(0.5)
        res = run(sb, "RESULT = 2")
        assert res.ok and res.value == 2, res.error
        assert sb._worker.proc.pid == pid  # noqa: SLF001 - the same worker, never restarted


def test_parallel_workers_each_get_one_gpu() -> None:
    """With several GPUs, worker slot i sees only GPU i (round robin): CUDA_VISIBLE_DEVICES
    is built from `Limits.gpus` (the GPU run itself is `test_gpu_is_passed_through`)."""
    from hyperpilot.sandbox.handle import minimal_env
    from hyperpilot.sandbox.runner import gpu_for_slot, shared_sandbox

    four = Limits(wall_seconds=60, gpus=(0, 1, 2, 3))
    assert [gpu_for_slot(four, slot).gpus for slot in range(5)] == [(0,), (1,), (2,), (3,), (0,)]
    assert gpu_for_slot(Limits(gpus=(2,)), 3).gpus == (2,) and gpu_for_slot(Limits(gpus=None), 1).gpus is None
    box = shared_sandbox(four, slot=1)  # nothing starts until a job runs
    assert box.limits.gpus == (1,) and minimal_env("/h", "/t", box.limits.gpus)["CUDA_VISIBLE_DEVICES"] == "1"


def test_an_executor_collected_inside_a_job_does_not_deadlock_its_sandbox(tmp_path: object) -> None:
    """Seen in CI: an old executor's data-file finalizer ran at garbage collection inside a
    trial thread that held the same shared sandbox's lock (Sandbox.run), and waited for it
    for ever. A finalizer now never waits: the file goes when the lock is next free."""
    import threading
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from hyperpilot.sandbox import SandboxExecutor

    sandbox = Sandbox(layer="plain")
    X, y = pd.DataFrame({"a": [1.0, 2.0]}), np.array([0, 1])
    try:
        executor = SandboxExecutor(sandbox=sandbox)
        path = Path(executor._shared_data(sandbox, X, y))  # noqa: SLF001 - what a trusted trial reads
        assert path.exists()

        def collect_inside_a_job() -> None:
            nonlocal executor
            with sandbox._lock:  # noqa: SLF001 - as Sandbox.run holds it while a job runs
                del executor  # its finalizer runs here, in this thread
        job = threading.Thread(target=collect_inside_a_job, daemon=True)
        job.start()
        job.join(timeout=20)
        assert not job.is_alive(), "the finalizer waited for the lock its own thread held"
        assert path.exists()  # not yet: the lock was held
        sandbox.share("other", lambda p: p.write_bytes(b"x"))  # the next use of the sandbox deletes it
        assert not path.exists() and str(path) not in map(str, sandbox._shared.values())  # noqa: SLF001

        second = SandboxExecutor(sandbox=sandbox)  # with the lock free, the file goes at once
        path = Path(second._shared_data(sandbox, X, y))  # noqa: SLF001
        del second
        assert not path.exists()
    finally:
        if sandbox._lock.acquire(timeout=1):  # noqa: SLF001 - not when the test found the deadlock
            sandbox._lock.release()  # noqa: SLF001
            sandbox.close()
