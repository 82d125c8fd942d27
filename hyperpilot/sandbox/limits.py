"""`Limits`: what one sandboxed trial may use.

Each cap is enforced by the strongest layer available (see `layers`): address space,
CPU time, file size, open files and process count as rlimits of the trial process; memory
and process count for the whole process tree through a cgroup v1 group where one can be
made; wall-clock time by the worker that forked the trial (and, as a backstop, by the
parent, which kills the whole sandbox)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from hyperpilot.errors import HyperpilotError

MiB = 1024 * 1024


class SandboxError(HyperpilotError):
    """A sandbox that cannot be set up as asked (a forced layer that is missing, bad limits)."""


def _default_memory_mb() -> int:
    """Three quarters of this machine's memory, at least 2 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - exotic platforms
        total = 8 * 1024 * MiB
    return max(2048, int(total * 0.75) // MiB)


@dataclass(frozen=True)
class Limits:
    """Per-trial caps. `None` means "no cap of this kind".

    - `wall_seconds`: wall-clock time; the whole process tree is killed when it is spent.
    - `cpu_seconds`: CPU time of each process (RLIMIT_CPU); default: wall time × cores.
    - `memory_mb`: address space of each process (RLIMIT_AS) and, with a cgroup, the
      resident memory of the whole tree. Not applied as RLIMIT_AS when GPUs are given
      (CUDA reserves huge virtual ranges); the cgroup still applies then.
    - `max_processes`: processes in the tree (cgroup pids.max; RLIMIT_NPROC, which the
      kernel ignores for root).
    - `max_open_files`, `max_file_mb`: RLIMIT_NOFILE, RLIMIT_FSIZE.
    - `max_log_kb`: how much of the trial's stdout and of its stderr is kept (the rest
      is counted and dropped, so a chatty trial never blocks).
    - `gpus`: GPU indices given to the trial (device nodes + CUDA_VISIBLE_DEVICES);
      `None` gives none.
    """

    wall_seconds: float | None = 3600.0
    cpu_seconds: float | None = None
    memory_mb: int | None = field(default_factory=_default_memory_mb)
    max_processes: int | None = 256
    max_open_files: int | None = 1024
    max_file_mb: int | None = 1024
    max_log_kb: int = 1024
    gpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_mb", "max_processes", "max_open_files", "max_file_mb"):
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
        if self.max_file_mb is not None:
            out["RLIMIT_FSIZE"] = self.max_file_mb * MiB
        return out

    def with_timeout(self, seconds: float | None) -> Limits:
        """A copy with another wall-clock limit (`None` keeps this one)."""
        if seconds is None:
            return self
        data: dict[str, Any] = asdict(self)
        data["wall_seconds"] = float(seconds)
        return Limits(**data)
