"""`SandboxResult` and the one-line reasons a sandboxed job failed.

The parent reads two things after a job: the worker's reply (how the process ended, what
it left behind) and `result.json` from the run dir (what the job returned or raised).
`explain` turns both into one clear reason, e.g. "timed out after 5 s", "memory cap of
512 MiB exceeded (MemoryError)", "network access is blocked in the sandbox".

Everything a trial wrote is untrusted *text* too: an error message or a traceback goes
into the study database and, for a program, back to the LLM that writes code (the repair
prompt). Under the weaker layers a trial can read this machine's files, so `clean_result`
keeps of `result.json` only what cannot carry much of them: the exception type (an
identifier), the first line of its message cut to `MAX_MESSAGE_CHARS` with `scrub`
applied (text shaped like `name:$hash:` or `user:x:0:0:` lines, long base64 or hex
runs and absolute paths outside the run dir are replaced by `<redacted>` / `<path>`),
and a traceback rebuilt from its frame lines (file name, line number, function) with
source lines only for the program's own file, taken from the parent's copy of it. The
descriptions of left-over processes are scrubbed the same way. What still gets through
is at most `MAX_MESSAGE_CHARS` characters of free text per failed trial."""

from __future__ import annotations

import errno as errno_mod
import os
import re
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


MAX_MESSAGE_CHARS = 200
_SECRET_LINE = re.compile(r"\S*:\S*:\S*:\S*")  # /etc/shadow, /etc/passwd, /etc/group-like records
_HASH = re.compile(r"\$\w{1,3}\$\S+")  # crypt(3) hashes
_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{40,}")  # base64, hex, keys, tokens
_PATH = re.compile(r"(?<![\w.~/:])(?:~|/)(?:[^\s'\",;:()\[\]{}<>]*)")
_IDENT = re.compile(r"[A-Za-z_][\w.]{0,99}")
_FRAME = re.compile(r"  ([\w.<>-]{1,100}), line (\d{1,7}), in ([\w<>.]{1,100})")
_WHERE = re.compile(r"[\w<>.]{1,100}:\d{1,7}(, from [\w.-]{1,100} line \d{1,7} in [\w<>.]{1,100})?")


def scrub(text: str, run_dir: str | None = None, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line of a trial's text with what looks like file content taken out (see the
    module's docstring); paths inside `run_dir` become relative ones."""
    line = " ".join(str(text).split())

    def path(m: re.Match[str]) -> str:
        p = m.group(0)
        if run_dir and (p == run_dir or p.startswith(run_dir.rstrip("/") + "/")):
            return os.path.relpath(p, run_dir)
        return "<path>" if len(p) > 1 else p

    line = _SECRET_LINE.sub("<redacted>", line)
    line = _HASH.sub("<redacted>", line)
    line = _PATH.sub(path, line)
    line = _BLOB.sub("<redacted>", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def clean_result(result: dict[str, Any] | None, run_dir: str, focus: str | None = None,
                 program: str | None = None) -> dict[str, Any] | None:
    """`result.json` as the rest of hyperpilot may see it (see the module's docstring):
    the value of a success untouched; of a failure the type, a scrubbed message, the errno,
    `where` when well-formed and a rebuilt traceback."""
    if result is None or result.get("ok"):
        return result
    etype = str(result.get("error_type", "Error"))
    etype = etype if _IDENT.fullmatch(etype) else "Error"
    msg = scrub(str(result.get("error", "")).strip().split("\n", 1)[0], run_dir)
    err = result.get("errno")
    where = str(result.get("where", ""))
    lines = [f"{etype}: {msg}".rstrip(": ")]
    source = (program or "").splitlines()
    for line in str(result.get("traceback", "")).splitlines()[1:]:
        m = _FRAME.fullmatch(line)
        if not m:
            continue  # source lines, extra message lines: free text, rebuilt below or left out
        lines.append(line)
        number = int(m.group(2))
        if focus and m.group(1) == focus and 0 < number <= len(source) and source[number - 1].strip():
            lines.append(f"    {source[number - 1].strip()[:160]}")
    return {
        "ok": False, "error_type": etype, "error": msg,
        "errno": err if isinstance(err, int) and not isinstance(err, bool) else None,
        "where": where if _WHERE.fullmatch(where) else "",
        "traceback": "\n".join(lines[:14]),
    }


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
    if status == "disk":
        used = reply.get("disk_used_mb")
        wrote = f"it wrote {used:.0f} MiB; " if isinstance(used, (int, float)) else ""
        return "disk", f"disk quota of {limits.max_disk_mb} MiB exceeded ({wrote}the whole process tree was killed)"
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
        kind, reason = _explain_error(result, limits)
        if oom and kind != "memory":  # the cgroup killed one of its processes (a loky worker, say)
            return "memory", f"memory cap of {_mib(limits.memory_mb)} exceeded (the cgroup killed a process of the trial; {reason})"
        return kind, reason
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
    if err == errno_mod.ENOSPC or err == errno_mod.EDQUOT:
        return "disk", f"disk quota of {limits.max_disk_mb} MiB exceeded, or the disk is full ({raw})"
    if err == errno_mod.EFBIG:
        if limits.max_disk_mb is not None and (limits.max_file_mb is None or limits.max_disk_mb < limits.max_file_mb):
            return "disk", f"disk quota of {limits.max_disk_mb} MiB exceeded by one file ({raw})"
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
