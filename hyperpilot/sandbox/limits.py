"""`Limits`: what one sandboxed trial may use.

Each cap is enforced by the strongest layer available (see `layers`): address space,
CPU time, file size, open files and process count as rlimits of the trial process; memory
and process count for the whole process tree through a cgroup v1 group where one can be
made; wall-clock time by the worker that forked the trial (and, as a backstop, by the
parent, which kills the whole sandbox); the disk a trial may fill by the worker, which
measures it while the trial runs (see `Limits.max_disk_mb`).

Defaults that depend on the machine or the environment (`memory_mb`, `max_disk_mb`) are
taken once per process, so that `Limits()` stays equal to itself (shared sandboxes are
keyed by their limits)."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from hyperpilot.errors import HyperpilotError

MiB = 1024 * 1024


class SandboxError(HyperpilotError):
    """A sandbox that cannot be set up as asked (a forced layer that is missing, bad limits)."""


ENV_MEMORY = "HYPERPILOT_TRIAL_MEMORY_MB"
ENV_DISK = "HYPERPILOT_TRIAL_DISK_MB"
MEMORY_FLOOR_MB = 2048
MEMORY_SHARE = 0.75
DEFAULT_DISK_MB = 1024


def _env_mb(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        mb = int(value)
    except ValueError:
        mb = 0
    if mb <= 0:
        raise SandboxError(f"${name} must be a whole number of MiB > 0, got {value!r}")
    return mb


@functools.cache
def available_memory_mb() -> int:
    """Memory available to new processes when first asked (psutil's `available`: free
    memory plus what the kernel can reclaim), in MiB; measured once per process."""
    try:
        import psutil

        return int(psutil.virtual_memory().available) // MiB
    except Exception:  # noqa: BLE001 - no psutil or no /proc: fall back to the physical memory
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MiB
        except (ValueError, OSError):  # pragma: no cover - exotic platforms
            return 8 * 1024


def _default_memory_mb() -> int:
    """`$HYPERPILOT_TRIAL_MEMORY_MB`, else three quarters of the memory available when this
    process first asked (not of the physical memory: what else runs is left its share),
    at least `MEMORY_FLOOR_MB`."""
    given = _env_mb(ENV_MEMORY)
    if given is not None:
        return given
    return max(MEMORY_FLOOR_MB, int(available_memory_mb() * MEMORY_SHARE))


def _default_disk_mb() -> int:
    """`$HYPERPILOT_TRIAL_DISK_MB`, else `DEFAULT_DISK_MB`."""
    given = _env_mb(ENV_DISK)
    return DEFAULT_DISK_MB if given is None else given


@dataclass(frozen=True)
class Limits:
    """Per-trial caps. `None` means "no cap of this kind".

    - `wall_seconds`: wall-clock time; the whole process tree is killed when it is spent.
    - `cpu_seconds`: CPU time of each process (RLIMIT_CPU); default: wall time × cores.
    - `memory_mb`: address space of each process (RLIMIT_AS) and, with a cgroup, the
      resident memory of the whole tree (the cgroup's OOM killer ends the trial: "memory
      cap of N MiB exceeded"). Not applied as RLIMIT_AS when GPUs are given (CUDA
      reserves huge virtual ranges); the cgroup still applies then. Default:
      `$HYPERPILOT_TRIAL_MEMORY_MB`, else 75 % of the memory available when the process
      first asked, at least 2 GiB (the CLI's `--trial-memory` sets it).
    - `max_processes`: processes in the tree (cgroup pids.max; RLIMIT_NPROC, which the
      kernel ignores for root).
    - `max_open_files`, `max_file_mb`: RLIMIT_NOFILE, RLIMIT_FSIZE.
    - `max_log_kb`: how much of the trial's stdout and of its stderr is kept (the rest
      is counted and dropped, so a chatty trial never blocks).
    - `gpus`: GPU indices given to the trial (device nodes + CUDA_VISIBLE_DEVICES);
      `None` gives none.
    - `max_disk_mb`: how much the trial may add on disk, all files together (default
      `$HYPERPILOT_TRIAL_DISK_MB`, else 1024; what the parent put in the run dir — the
      spec, a fold's data — does not count). Under every layer the worker measures the
      trial's run dir (its TMPDIR lives there outside bwrap) — allocated blocks, at least
      4 KiB per file, plus files the trial deleted but holds open — every 0.1 s (less
      often when measuring takes longer than a tenth of that: a tree of many files) and
      when it ends, and kills the whole tree once it is over ("disk quota of N MiB
      exceeded"); each file is also capped at it (RLIMIT_FSIZE), so what is written
      between two looks is all a trial can overshoot by. Under bwrap the private /tmp
      and /dev/shm are counted too and are tmpfs of that size (the kernel says ENOSPC).
      Under unshare and plain, files written outside the run dir (the host's /tmp, say)
      are not counted: those layers do not isolate the file system.
    """

    wall_seconds: float | None = 3600.0
    cpu_seconds: float | None = None
    memory_mb: int | None = field(default_factory=_default_memory_mb)
    max_processes: int | None = 256
    max_open_files: int | None = 1024
    max_file_mb: int | None = 1024
    max_log_kb: int = 1024
    gpus: tuple[int, ...] | None = None
    max_disk_mb: int | None = field(default_factory=_default_disk_mb)

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_mb", "max_processes", "max_open_files", "max_file_mb",
                     "max_disk_mb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SandboxError(f"sandbox limit {name} must be > 0 or None, got {value!r}")
        if self.max_log_kb < 1:
            raise SandboxError(f"sandbox limit max_log_kb must be >= 1, got {self.max_log_kb}")

    def cpu_cap(self) -> float | None:
        if self.cpu_seconds is not None:
            return self.cpu_seconds
        if self.wall_seconds is None:
            return None
        return self.wall_seconds * (os.cpu_count() or 1) + 10

    def rlimits(self) -> dict[str, int]:
        """The rlimits the worker sets in the forked trial process (names of `resource`)."""
        out: dict[str, int] = {"RLIMIT_CORE": 0}
        cpu = self.cpu_cap()
        if cpu is not None:
            out["RLIMIT_CPU"] = max(1, int(cpu + 0.999))
        if self.memory_mb is not None and not self.gpus:
            out["RLIMIT_AS"] = self.memory_mb * MiB
        if self.max_processes is not None:
            out["RLIMIT_NPROC"] = self.max_processes
        if self.max_open_files is not None:
            out["RLIMIT_NOFILE"] = self.max_open_files
        file_mb = min((m for m in (self.max_file_mb, self.max_disk_mb) if m is not None), default=None)
        if file_mb is not None:
            out["RLIMIT_FSIZE"] = file_mb * MiB
        return out

    def with_timeout(self, seconds: float | None) -> Limits:
        """A copy with another wall-clock limit (`None` keeps this one)."""
        if seconds is None:
            return self
        data: dict[str, Any] = asdict(self)
        data["wall_seconds"] = float(seconds)
        return Limits(**data)
