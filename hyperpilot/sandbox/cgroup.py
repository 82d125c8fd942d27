"""A cgroup v1 group (memory + pids controllers) for one sandbox's whole process tree.

Lifecycle: `CgroupV1.available()` finds the controllers this process may write to (its own
group in each hierarchy); `create(name, memory_bytes, max_pids)` makes a child group with
the caps; `wrap(command)` prefixes a command with a tiny `sh` that moves itself into the
group before it `exec`s, so every process of the sandbox is born inside it; `kill()`
SIGKILLs everything in the group (escapees included); `remove()` kills and deletes it
(a `Sandbox` does when its worker stops or it closes). Groups are named
`hyperpilot-<owner pid>-…`: `sweep_stale()` deletes the empty ones whose owner died
without removing them (a `kill -9` of the coordinator).
OOM kills are read from `memory.oom_control` (`oom_kill N`), or `memory.events` where a
hierarchy has it; `memory.failcnt` only where neither does (it also counts charges that
reclaim satisfied, and missed the OOM kills on the machines measured).
cgroup v2 is not used (on the machines measured it has no controllers delegated)."""

from __future__ import annotations

import os
import shlex
import signal
import time
from pathlib import Path

CONTROLLERS = ("memory", "pids")
PREFIX = "hyperpilot-"  # + owner pid + "-" + unique part
STALE_AFTER_S = 60.0  # a group younger than this may be between its mkdir and its first process


def _mounts() -> dict[str, Path]:
    """controller -> mount point of its v1 hierarchy."""
    out: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "cgroup":
            for opt in parts[3].split(","):
                if opt in CONTROLLERS:
                    out[opt] = Path(parts[1])
    return out


def _own_groups() -> dict[str, str]:
    """controller -> this process's group path in that hierarchy."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):
            if c in CONTROLLERS:
                out[c] = path
    return out


class CgroupV1:
    """One group per controller, created under this process's own groups."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    @staticmethod
    def available() -> dict[str, Path]:
        """controller -> the writable folder new groups go into (empty when none)."""
        mounts, groups = _mounts(), _own_groups()
        out: dict[str, Path] = {}
        for c in CONTROLLERS:
            if c in mounts and c in groups:
                base = mounts[c] / groups[c].lstrip("/")
                if base.is_dir() and os.access(base, os.W_OK):
                    out[c] = base
        return out

    @classmethod
    def create(cls, name: str, memory_bytes: int | None, max_pids: int | None) -> CgroupV1:
        """Make the groups; raises OSError when the kernel refuses."""
        made: dict[str, Path] = {}
        try:
            for c, base in cls.available().items():
                path = base / name
                path.mkdir()
                made[c] = path
                if c == "memory" and memory_bytes is not None:
                    (path / "memory.limit_in_bytes").write_text(str(memory_bytes))
                    swap = path / "memory.memsw.limit_in_bytes"
                    if swap.exists():
                        try:
                            swap.write_text(str(memory_bytes))
                        except OSError:
                            pass
                if c == "pids" and max_pids is not None:
                    (path / "pids.max").write_text(str(max_pids))
        except OSError:
            cls(made).remove()
            raise
        return cls(made)

    def wrap(self, command: list[str]) -> list[str]:
        """`command`, started inside the groups."""
        joins = " && ".join(f"echo $$ > {shlex.quote(str(p / 'cgroup.procs'))}" for p in self.paths.values())
        if not joins:
            return command
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *command]

    def pids(self) -> set[int]:
        out: set[int] = set()
        for path in self.paths.values():
            try:
                out.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return out

    def oom_kills(self) -> int:
        """How many processes the group's OOM killer killed so far (0 without a memory group)."""
        path = self.paths.get("memory")
        if path is None:
            return 0
        for name in ("memory.oom_control", "memory.events"):
            try:
                lines = (path / name).read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        try:  # an old kernel without the oom_kill counter
            return int((path / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return 0

    @staticmethod
    def sweep_stale(prefix: str = PREFIX) -> list[Path]:
        """Delete the groups `hyperpilot-<pid>-…` whose owner `pid` is dead, that are
        empty and older than `STALE_AFTER_S`; return them. A group with a process in it
        is left alone (rmdir refuses it), so a live sandbox of another pid namespace that
        shares the hierarchy is never touched."""
        removed: list[Path] = []
        now = time.time()
        for base in CgroupV1.available().values():
            try:
                entries = list(base.iterdir())
            except OSError:
                continue
            for path in entries:
                pid = path.name[len(prefix):].split("-", 1)[0] if path.name.startswith(prefix) else ""
                if not pid.isdigit() or int(pid) == os.getpid():
                    continue
                try:
                    os.kill(int(pid), 0)
                    continue
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
                try:
                    if now - path.stat().st_mtime < STALE_AFTER_S:
                        continue
                    path.rmdir()
                    removed.append(path)
                except OSError:
                    pass
        return removed

    def kill(self) -> None:
        for _ in range(200):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill()
        for path in self.paths.values():
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
