"""`SandboxResult` and the one-line reasons a sandboxed job failed.

The parent reads two things after a job: the worker's reply (how the process ended, what
it left behind) and `result.json` from the run dir (what the job returned or raised).
`explain` turns both into one clear reason, e.g. "timed out after 5 s", "memory cap of
512 MiB exceeded (MemoryError)", "network access is blocked in the sandbox"."""

from __future__ import annotations

import errno as errno_mod
import signal
from dataclasses import dataclass, field
from typing import Any

from hyperpilot.sandbox.limits import Limits


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed job did. `value` is the job's JSON result when `ok`; otherwise
    `error` is one line (the reason) and `traceback` a short summary for feedback; `files`
    holds the run-dir files the caller asked to collect (when the job succeeded)."""

    ok: bool
    value: Any = None
    error: str = ""
    kind: str = ""
    traceback: str = ""
    where: str = ""
    seconds: float = 0.0
    layer: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    leftovers: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


NETWORK_ERRNOS = {errno_mod.ENETUNREACH, errno_mod.ECONNREFUSED, errno_mod.EHOSTUNREACH, errno_mod.EADDRNOTAVAIL}
FILE_ERRNOS = {errno_mod.EACCES, errno_mod.EPERM, errno_mod.EROFS}
NETWORK_TYPES = {"gaierror", "ConnectionRefusedError", "ConnectionError", "herror", "timeout", "TimeoutError"}


def _mib(n: int | None) -> str:
    return f"{n} MiB" if n is not None else "the memory cap"


def explain(reply: dict[str, Any], result: dict[str, Any] | None, limits: Limits, oom: bool = False) -> tuple[str, str]:
    """(kind, one-line reason) for a failed job; ("", "") when it succeeded."""
    status = reply.get("status")
    leftovers = reply.get("leftovers") or []
    if status == "timeout":
        return "timeout", f"timed out after {limits.wall_seconds:g} s (wall-clock limit); the whole process tree was killed"
    if status == "error":
        return "sandbox", f"the sandbox worker failed: {reply.get('error', '?')}"
    if status == "signal":
        sig = int(reply.get("signal") or 0)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        cpu, cap = reply.get("cpu_seconds") or 0.0, limits.cpu_cap()
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cap is not None and cpu >= cap - 0.5):
            return "cpu", f"CPU time limit of {cap:g} s exceeded (killed by {name})"
        if sig == signal.SIGKILL and oom:
            return "memory", f"memory cap of {_mib(limits.memory_mb)} exceeded (the cgroup killed it)"
        return "crash", f"the trial process was killed by {name}"
    if result is None:
        code = reply.get("code")
        if oom:
            return "memory", f"memory cap of {_mib(limits.memory_mb)} exceeded (the cgroup killed it)"
        return "crash", f"the trial process exited with code {code} and wrote no result"
    if not result.get("ok"):
        return _explain_error(result, limits)
    if leftovers:
        shown = "; ".join(leftovers[:3]) + (" …" if len(leftovers) > 3 else "")
        return "leftovers", f"left {len(leftovers)} process(es) running after it finished ({shown}); the sandbox killed them"
    return "", ""


def _explain_error(result: dict[str, Any], limits: Limits) -> tuple[str, str]:
    etype, msg, err = str(result.get("error_type", "Error")), str(result.get("error", "")), result.get("errno")
    raw = f"{etype}: {msg}".rstrip(": ")
    text = f"{etype} {msg}".lower()
    if etype == "MemoryError" or "unable to allocate" in text or "cannot allocate memory" in text or err == errno_mod.ENOMEM:
        return "memory", f"memory cap of {_mib(limits.memory_mb)} exceeded ({raw})"
    if err == errno_mod.EAGAIN and ("fork" in text or "resource temporarily unavailable" in text) or "can't start new thread" in text:
        return "processes", f"process limit of {limits.max_processes} reached ({raw})"
    if err == errno_mod.EFBIG:
        return "file_size", f"file size cap of {limits.max_file_mb} MiB exceeded ({raw})"
    if err == errno_mod.EMFILE:
        return "open_files", f"open-file limit of {limits.max_open_files} reached ({raw})"
    if etype in NETWORK_TYPES or err in NETWORK_ERRNOS or "name resolution" in text or "name or service" in text:
        return "network", f"network access is blocked in the sandbox ({raw})"
    if err in FILE_ERRNOS:
        return "filesystem", f"file access outside the run dir is blocked in the sandbox ({raw})"
    if err == errno_mod.ENOENT:
        return "filesystem", f"{raw} (a sandboxed trial sees only its run dir, /tmp, the data and the system)"
    return "error", raw
