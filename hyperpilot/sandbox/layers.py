"""Isolation layers: which are on this machine, and the command that starts a worker in them.

Three ways to start the sandbox worker, strongest first (`choose` picks the first that
works, or the one forced with the `layer` argument or `$HYPERPILOT_SANDBOX`):

- `bwrap` (bubblewrap): new user (uid 65534, no further user namespaces), network, pid,
  ipc, uts and cgroup namespaces; all capabilities dropped; a new session; dies with
  its parent. The file system is built from read-only binds of the system folders,
  the Python installation, the virtualenv and the hyperpilot package only (so /root,
  /home, the study database and the test's secrets are simply not there), a private
  /tmp and /dev/shm, the data folder read-only and the runs folder writable.
- `unshare` (util-linux): network, pid (killed with its child), ipc and uts namespaces
  and a private /proc; capabilities dropped with `setpriv` where it exists. Files are
  NOT hidden and the system is NOT read-only.
- `plain`: rlimits, a new session, the worker as child subreaper and a process-tree
  kill; no namespaces: the network and the files are NOT isolated.

Independently, a cgroup v1 group caps memory and processes of the whole tree where this
process may create one (`$HYPERPILOT_SANDBOX_CGROUP=0` turns it off), and GPUs are passed
through where /dev/nvidia* exist.

The disk quota (`Limits.max_disk_mb`) is measured by the worker under every layer (the
run dir, where the trial's TMPDIR is outside bwrap); under a bwrap that has `--size` the
private /tmp and /dev/shm are also tmpfs mounts of that size. `weak_layer_warning` is the one line a
solve logs when it runs under `unshare` or `plain` (what is not isolated, and how to get
bubblewrap)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hyperpilot.sandbox.cgroup import CgroupV1
from hyperpilot.sandbox.limits import SandboxError

LAYERS = ("bwrap", "unshare", "plain")
ENV_LAYER = "HYPERPILOT_SANDBOX"
ENV_CGROUP = "HYPERPILOT_SANDBOX_CGROUP"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt/conda")
ETC_FILES = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group", "nsswitch.conf",
    "hosts", "host.conf", "ssl", "ca-certificates", "fonts", "alternatives", "mime.types", "os-release",
    "matplotlibrc", "nvidia",
)
_TRUE = "/bin/true"


@dataclass(frozen=True)
class Check:
    """One line of `hyperpilot doctor`."""

    name: str
    active: bool
    detail: str


def _probe(command: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return done.returncode == 0, (done.stderr or done.stdout).strip()[:200]


def _system_args() -> list[str]:
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


@functools.cache
def bwrap_status() -> tuple[bool, bool, str]:
    """(works, user namespace works, version or why not)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False, False, "not installed (apt-get install bubblewrap)"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    base = [exe, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", *_system_args(), "--proc", "/proc", "--dev", "/dev"]
    ok, why = _probe([*base, _TRUE])
    if not ok:
        return False, False, f"{version}: does not start here ({why})"
    userns, _ = _probe([*base[:2], "--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns", *base[2:], _TRUE])
    return True, userns, version


@functools.cache
def bwrap_has_size() -> bool:
    """Whether this bwrap knows `--size` (a size cap for the next `--tmpfs`)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--size" in done.stdout + done.stderr


INSTALL_BWRAP = "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap) for full isolation"
WEAK = {
    "unshare": ("trials get no network and cannot see or signal this process, but they CAN read this machine's "
                "files (home folders, the repository, /etc/shadow when run as root) and write outside their run "
                "dir; what they read can reach the study's error messages (scrubbed and cut to a short line)"),
    "plain": ("trials run as this user with rlimits only (and a cgroup where one can be made): they CAN read and "
              "write this machine's files, reach the network, and signal (kill) this process, though they start "
              "in a session and process group of their own"),
}


def weak_layer_warning(layer: str) -> str | None:
    """One line when `layer` is weaker than bubblewrap (what is not isolated, how to fix
    it), else None."""
    if layer not in WEAK:
        return None
    why = bwrap_status()[2] if not bwrap_status()[0] else "bubblewrap was not chosen"
    return f"sandbox layer '{layer}' is weaker than bubblewrap ({why}): {WEAK[layer]}; {INSTALL_BWRAP}."


@functools.cache
def setpriv_path() -> str | None:
    exe = shutil.which("setpriv")
    if exe and _probe([exe, "--pdeathsig", "KILL", _TRUE])[0]:
        return exe
    return None


@functools.cache
def unshare_status() -> tuple[bool, str]:
    exe = shutil.which("unshare")
    if exe is None:
        return False, "not installed (util-linux)"
    return _probe(_unshare_prefix(exe) + [_TRUE])[0], exe


def _unshare_prefix(exe: str) -> list[str]:
    return [exe, "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc"]


def cgroup_wanted() -> bool:
    return os.environ.get(ENV_CGROUP, "1").strip().lower() not in ("0", "false", "no", "off")


def gpu_indices() -> tuple[int, ...]:
    """Indices of the NVIDIA GPUs whose device nodes exist."""
    found = [int(m.group(1)) for p in Path("/dev").glob("nvidia*") if (m := re.fullmatch(r"nvidia(\d+)", p.name))]
    return tuple(sorted(found))


def choose(requested: str | None = None) -> str:
    """The layer to use: `requested`, else `$HYPERPILOT_SANDBOX`, else the strongest that
    works. A forced layer that does not work raises `SandboxError`."""
    want = (requested or os.environ.get(ENV_LAYER) or "auto").strip().lower()
    if want not in (*LAYERS, "auto"):
        raise SandboxError(f"unknown sandbox layer '{want}'; choose auto, {', '.join(LAYERS)}")
    if want in ("auto", "bwrap") and bwrap_status()[0]:
        return "bwrap"
    if want == "bwrap":
        raise SandboxError(f"sandbox layer bwrap was asked for but {bwrap_status()[2]}")
    if want in ("auto", "unshare") and unshare_status()[0]:
        return "unshare"
    if want == "unshare":
        raise SandboxError("sandbox layer unshare was asked for but `unshare --net --pid` does not work here")
    return "plain"


def python_binds() -> list[str]:
    """Folders the worker's Python needs, as real paths: the installation, the
    virtualenv, and hyperpilot's own package folder (an editable install lives outside)."""
    package = Path(__file__).resolve().parents[1]  # hyperpilot/
    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)), str(package)}
    out: set[str] = set()
    for p in paths:
        out.add(os.path.realpath(p))
        out.add(os.path.abspath(p))
    return sorted(p for p in out if os.path.isdir(p))


def command(layer: str, *, python: list[str], runs: Path, data: Path, env: dict[str, str],
            gpus: tuple[int, ...] | None, extra_ro: tuple[str, ...] = (), tmp_mb: int | None = None) -> list[str]:
    """The argv that starts `python` (the worker command) inside `layer`; under bwrap the
    private /tmp and /dev/shm hold at most `tmp_mb` MiB each (where bwrap has `--size`)."""
    if layer == "bwrap":
        _, userns, _ = bwrap_status()
        args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--unshare-all"]
        if userns:
            args += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
        args += ["--cap-drop", "ALL", *_system_args()]
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        # The private /tmp comes before the binds: a venv or checkout that lives under /tmp
        # (a CI clone, say) must be bound on top of it, not hidden by it.
        size = ["--size", str(tmp_mb * 1024 * 1024)] if tmp_mb is not None and bwrap_has_size() else []
        args += ["--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/dev/shm", *size, "--tmpfs", "/tmp"]
        for p in (*python_binds(), *extra_ro):
            args += ["--ro-bind", p, p]
        if gpus:
            for node in sorted(Path("/dev").glob("nvidia*")):
                args += ["--dev-bind", str(node), str(node)]
            args += ["--ro-bind", "/sys", "/sys"]
        args += ["--ro-bind", str(data), str(data), "--bind", str(runs), str(runs), "--chdir", str(runs), "--clearenv"]
        for k, v in env.items():
            args += ["--setenv", k, v]
        return [*args, "--", *python, "--private-tmp"]
    setpriv = setpriv_path()
    drop = [setpriv, "--no-new-privs", "--bounding-set", "-all", "--inh-caps", "-all"] if setpriv and os.geteuid() == 0 else []
    if layer == "unshare":
        exe = unshare_status()[1]
        prefix = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
        return [*prefix, *_unshare_prefix(exe), *drop, *python]
    if layer == "plain":
        return [*drop, *python, "--die-with-parent"]
    raise SandboxError(f"unknown sandbox layer '{layer}'")


def doctor() -> list[Check]:
    """What is active on this machine, and what is missing."""
    checks: list[Check] = []
    ok, userns, why = bwrap_status()
    checks.append(Check("bubblewrap", ok, why if ok else why))
    if ok:
        checks.append(Check("user namespace (uid 65534 inside bwrap)", userns, "yes" if userns else "no: keeps uid 0 with all capabilities dropped"))
    uok, where = unshare_status()
    checks.append(Check("unshare (fallback)", uok, where if uok else "unavailable"))
    setpriv = setpriv_path()
    checks.append(Check("setpriv (drop capabilities in fallbacks)", setpriv is not None, setpriv or "not installed"))
    groups = CgroupV1.available() if cgroup_wanted() else {}
    for c in ("memory", "pids"):
        detail = str(groups[c]) if c in groups else ("turned off" if not cgroup_wanted() else "no writable cgroup v1 group")
        checks.append(Check(f"cgroup v1 {c}", c in groups, detail))
    root = os.geteuid() == 0
    checks.append(Check("rlimits (AS, CPU, FSIZE, NOFILE, NPROC)", True,
                        "NPROC is ignored by the kernel for root: the pids cgroup bounds forks" if root else "all enforced"))
    checks.append(Check("child subreaper + process-tree kill", sys.platform.startswith("linux"), "prctl(PR_SET_CHILD_SUBREAPER)"))
    checks.append(Check("disk quota of a trial", True, "run dir measured by the worker"
                        + ("; bwrap's /tmp and /dev/shm are sized tmpfs" if ok and bwrap_has_size() else "")))
    gpus = gpu_indices()
    checks.append(Check("GPU pass-through", bool(gpus), f"GPUs {list(gpus)}" if gpus else "no /dev/nvidia* devices"))
    try:
        layer = choose()
        checks.append(Check("layer in use", True, layer + ("" if layer == "bwrap" else ": weaker isolation, see above")))
    except SandboxError as e:
        checks.append(Check("layer in use", False, str(e)))
    return checks
