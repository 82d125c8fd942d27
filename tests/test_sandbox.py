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
