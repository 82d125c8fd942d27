"""The parent's handle on one sandbox worker process: its control pipe (JSON lines, read
with a deadline and a size cap), and the kill of everything it started. Also the minimal
environment every worker and trial gets."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperpilot.sandbox.cgroup import CgroupV1
from hyperpilot.sandbox.limits import MiB

# Passed through from this process. Thread settings take effect when the worker starts
# (the OpenMP/BLAS runtimes read them once, when the worker preloads them).
PASS_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOKY_MAX_CPU_COUNT",
            "TZ", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
MAX_RESULT_BYTES = 8 * MiB
POLL_S = 0.05  # how often a running job's reports are read
TRIAL_THREADS = max(1, (os.cpu_count() or 2) - 1)


def minimal_env(home: str, tmp: str, gpus: tuple[int, ...] | None) -> dict[str, str]:
    """The whole environment of a trial: no API keys, no tokens, nothing else."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": os.path.join(tmp, "matplotlib"),
        "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)) if gpus else "",
        # Leave a core to the coordinating process (and its LLM), and never spin-wait:
        # spinning OpenMP threads made hist_gradient_boosting 10-25x slower when the
        # CPU was shared. The parent's own settings, when given, win.
        "OMP_NUM_THREADS": str(TRIAL_THREADS), "OPENBLAS_NUM_THREADS": str(TRIAL_THREADS),
        "MKL_NUM_THREADS": str(TRIAL_THREADS), "OMP_WAIT_POLICY": "PASSIVE",
    }
    env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    return env


class WorkerHandle:
    """One started worker process and what belongs to it."""

    def __init__(self, proc: subprocess.Popen[bytes], root: Path, cgroup: CgroupV1 | None, layer: str) -> None:
        self.proc, self.root, self.cgroup, self.layer = proc, root, cgroup, layer
        self.jobs = 0
        self.buffer = b""
        self.startup_seconds = 0.0

    def read_line(self, deadline: float | None, poll: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """The next JSON line from the worker, or None on EOF / deadline / garbage.
        `poll()` is called every `POLL_S` while waiting (the report channel)."""
        if self.proc.stdout is None or self.proc.stdout.closed:
            return None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if poll is not None:
                wait = POLL_S if wait is None else min(wait, POLL_S)
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                if poll is not None and (deadline is None or time.monotonic() < deadline):
                    poll()
                    continue
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk or len(self.buffer) > MAX_RESULT_BYTES:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def send(self, obj: dict[str, Any]) -> bool:
        if self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def kill(self) -> None:
        """Kill the worker and everything it started (bwrap's namespace, the cgroup)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process in D state
            pass
        if self.cgroup is not None:
            self.cgroup.remove()
