"""The worker: the process inside the sandbox that forks one child per trial.

Lifecycle (started by `runner.Sandbox` as `python -I .../hyperpilot/sandbox/worker.py` —
a script, so that nothing of the hyperpilot package is imported unless preloaded —
inside whatever isolation layers are active):

1. Become a child subreaper (every orphan of a trial is re-parented to the worker, so
   `setsid` escapees stay findable), make itself non-dumpable (a trial cannot ptrace it
   or read its /proc files), optionally die with its parent.
2. Import the preload modules once (pandas, scikit-learn, hyperpilot's trainers) and run
   the optional warm-up function (first-use caches), so a trial starts in milliseconds
   instead of seconds; then say `{"ready": true}`.
3. For every request line `{"run_dir", "timeout", "rlimits", "env", "log_cap", "disk_cap"}`
   on the control pipe: fork a child that starts a new session, sets the rlimits, the minimal
   environment and the run dir, shuts the channels through which one trial could leave
   data to the next (`deny_ipc`: System V IPC, POSIX message queues and kernel keyrings
   outlive a process), and runs `job.run_job(run_dir)`, which writes
   `result.json` there. The worker keeps the child's stdout and stderr (pipes) up to
   `log_cap` bytes each, waits for the child with the wall-clock deadline while it
   measures, every `DISK_POLL_S`, what the trial added on disk (`disk_usage`: its run dir,
   and the private /tmp and /dev/shm under bwrap) — over `disk_cap` bytes the whole tree
   is killed (status "disk") — then kills
   every process the trial left behind (a `setsid` grandchild, a fork bomb) and replies
   with one JSON line: how the child ended, how long it took, its resource usage and
   what it left behind. The worker itself never parses the trial's stdout.
4. On EOF of the control pipe, kill whatever is left and exit.

Nothing a trial does can reach the worker's memory (it is a fork). The parent still
treats the worker as untrusted: it reads only JSON, with a size cap, and kills the whole
sandbox when the worker does not answer in time.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import select
import shutil
import signal
import stat
import sys
import time
import traceback
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
LEFTOVER_GRACE_S = 1.0
DISK_POLL_S = 0.1  # how often the disk a trial fills is measured (less often when measuring is slow)
ENTRY_BYTES = 4096  # what one file or folder costs at least (a million empty files are not free)
# seccomp: (AUDIT_ARCH_*, syscalls that create or reach state which outlives the process:
# shmget, semget, msgget, mq_open, add_key, request_key, keyctl)
IPC_SYSCALLS = {
    "x86_64": (0xC000003E, (29, 64, 68, 240, 248, 249, 250)),
    "aarch64": (0xC00000B7, (194, 190, 186, 180, 217, 218, 219)),
}


def _prctl(option: int, arg: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def deny_ipc() -> bool:
    """Install a seccomp filter in this (trial) process and its descendants: the syscalls
    of `IPC_SYSCALLS` fail with EPERM, and so does every syscall of a foreign ABI (i386,
    x32), which could reach them under other numbers. The files a trial may write are
    wiped after it, but System V shared memory, semaphores and message queues, POSIX
    message queues and keyrings would outlive it in the sandbox: a fold's process, which
    fits on the labels the next fold is scored on, could leave them there. False where
    this machine's architecture is not known or seccomp is missing."""
    import platform

    arch = IPC_SYSCALLS.get(platform.machine())
    if arch is None:
        return False
    audit, numbers = arch
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JSET|K, BPF_RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    prog: list[tuple[int, int, int, int]] = [(ld, 0, 0, 4), (jeq, 1, 0, audit), (ret, 0, 0, deny), (ld, 0, 0, 0)]
    checks = ([(jset, 0x40000000)] if audit == 0xC000003E else []) + [(jeq, n) for n in numbers]
    end = len(prog) + len(checks)  # index of "allow"; "deny" follows it
    for op, k in checks:  # on a match jump to "deny" (jt counts the instructions skipped)
        prog.append((op, end - len(prog), 0, k))
    prog += [(ret, 0, 0, allow), (ret, 0, 0, deny)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(code, jt, jf, k) for code, jt, jf, k in prog])
    fprog = Program(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0) != 0:
        return False
    return bool(libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(2), ctypes.byref(fprog), 0, 0) == 0)


def _job_module() -> Any:
    """`job.py` beside this file, loaded by path: a job need not import the hyperpilot
    package (whose import pulls in everything) unless its target lives there."""
    module = sys.modules.get("hyperpilot.sandbox.job") or sys.modules.get("_hyperpilot_sandbox_job")
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("_hyperpilot_sandbox_job", os.path.join(os.path.dirname(__file__), "job.py"))
        if spec is None or spec.loader is None:
            raise ImportError("cannot load hyperpilot/sandbox/job.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process this /proc shows."""
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) >= 2:
            table[int(name)] = (int(rest[1]), rest[0])
    return table


def descendants(root: int | None = None) -> list[int]:
    """Live (non-zombie) descendants of `root` (default: this process)."""
    root = os.getpid() if root is None else root
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if table[pid][1] not in ("Z", "X"):
            out.append(pid)
    return out


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = ""
    return f"pid {pid}: {cmd[:80] or '?'}"


def reap() -> None:
    """Collect every exited child (orphans come to us as the subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all() -> None:
    """SIGKILL every descendant until none is left (a fork bomb keeps forking for a while)."""
    for _ in range(500):
        alive = descendants()
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reap()
        time.sleep(0.005)


def disk_usage(roots: list[str], stop_above: int | None = None) -> int:
    """Bytes taken by the files under `roots` (allocated blocks, at least `ENTRY_BYTES` a
    file, hard links once, not crossing into other mounts: bwrap's binds) plus the files
    this worker's descendants deleted but hold open on those file systems. The walk stops
    early once more than `stop_above` bytes were found."""
    total, devices, seen = 0, set(), set()
    for root in roots:
        try:
            dev = os.lstat(root).st_dev
        except OSError:
            continue
        devices.add(dev)
        todo = [root]
        while todo:
            folder = todo.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if st.st_dev != dev:
                            continue
                        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                            if (st.st_dev, st.st_ino) in seen:
                                continue
                            seen.add((st.st_dev, st.st_ino))
                        total += max(st.st_blocks * 512, ENTRY_BYTES)
                        if stop_above is not None and total > stop_above:
                            return total
                        if stat.S_ISDIR(st.st_mode):
                            todo.append(entry.path)
            except OSError:
                continue
    for pid in descendants():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if not os.readlink(path).endswith(" (deleted)"):
                    continue
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_dev in devices and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _kill_trial(pid: int) -> Any:
    """SIGKILL the trial (its process group, then itself) and collect it: (status, usage)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _, status, usage = os.wait4(pid, 0)
    return status, usage


class _Log:
    """Copies a pipe into a file, keeping the first `cap` bytes and counting the rest."""

    def __init__(self, fd: int, path: str, cap: int) -> None:
        self.fd, self.cap, self.kept, self.dropped = fd, cap, 0, 0
        self.file = open(path, "xb")  # noqa: SIM115 - closed in close()
        self.open = True

    def pump(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            self.close()
            return
        room = max(0, self.cap - self.kept)
        if room:
            self.file.write(data[:room])
            self.kept += min(room, len(data))
        self.dropped += max(0, len(data) - room)

    def close(self) -> None:
        if self.open:
            self.open = False
            os.close(self.fd)
            if self.dropped:
                self.file.write(f"\n[hyperpilot: {self.dropped} more bytes dropped]\n".encode())
            self.file.close()


def _child(req: dict[str, Any], out_w: int, err_w: int, close: list[int]) -> None:
    """In the forked trial process: isolate, limit, run the job; never returns."""
    code = 70
    try:
        os.setsid()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(PR_SET_DUMPABLE, 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in {null, out_w, err_w, *close}:
            if fd > 2:
                os.close(fd)
        for name, value in req.get("rlimits", {}).items():
            which = getattr(resource, name)
            ceiling = resource.getrlimit(which)[1]  # a cap can only go down
            if ceiling != resource.RLIM_INFINITY:
                value = min(value, ceiling)
            hard = value + 5 if name == "RLIMIT_CPU" else value
            resource.setrlimit(which, (value, hard if ceiling == resource.RLIM_INFINITY else min(hard, ceiling)))
        deny_ipc()
        os.chdir(req["run_dir"])
        os.environ.clear()
        os.environ.update(req.get("env", {}))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        code = _job_module().run_job(req["run_dir"])
    except BaseException:  # noqa: BLE001 - report anything, then exit
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def run_one(req: dict[str, Any], ctl: list[int], private_tmp: bool) -> dict[str, Any]:
    """Fork, supervise and clean up one trial; return the reply."""
    run_dir, cap = req["run_dir"], int(req.get("log_cap", 1 << 20))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    logs = {out_r: _Log(out_r, os.path.join(run_dir, "stdout.txt"), cap),
            err_r: _Log(err_r, os.path.join(run_dir, "stderr.txt"), cap)}
    disk_cap: int | None = None if req.get("disk_cap") is None else int(req["disk_cap"])
    watched = [run_dir, "/tmp", "/dev/shm"] if private_tmp else [run_dir]
    disk_base = disk_usage(watched) if disk_cap is not None else 0  # the parent's files, the log files
    disk_used = 0
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req, out_w, err_w, [out_r, err_r, *ctl, *(log.file.fileno() for log in logs.values())])
    os.close(out_w)
    os.close(err_w)
    pidfd = os.pidfd_open(pid)
    timeout = req.get("timeout")
    deadline = None if timeout is None else start + float(timeout)
    timed_out, over_disk, status, usage = False, False, 0, None
    next_look = start + DISK_POLL_S

    def over_quota() -> bool:
        nonlocal disk_used
        cap = disk_cap or 0
        disk_used = disk_usage(watched, disk_base + cap) - disk_base
        return disk_used > cap

    def pump(wait: float | None, with_pid: bool) -> list[int]:
        fds = [fd for fd, log in logs.items() if log.open] + ([pidfd] if with_pid else [])
        if not fds:
            time.sleep(wait or 0)
            return []
        ready, _, _ = select.select(fds, [], [], wait)
        for fd in ready:
            if fd in logs:
                logs[fd].pump()
        return ready

    while True:
        now = time.monotonic()
        wait = None if deadline is None else max(0.0, deadline - now)
        if disk_cap is not None:
            wait = max(0.0, min(next_look - now, wait if wait is not None else DISK_POLL_S))
        ready = pump(wait, True)
        if pidfd in ready:
            _, status, usage = os.wait4(pid, 0)
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            timed_out = True
            status, usage = _kill_trial(pid)
            break
        if disk_cap is not None and now >= next_look:
            if over_quota():
                over_disk = True
                status, usage = _kill_trial(pid)
                break
            after = time.monotonic()  # measuring a huge tree (or /proc) takes at most a tenth of the time
            next_look = after + max(DISK_POLL_S, 10 * (after - now))
    seconds = time.monotonic() - start
    leftovers: list[str] = []
    if disk_cap is not None and not (timed_out or over_disk) and over_quota():  # between the last look and its end
        over_disk = True
        kill_all()
    if not (timed_out or over_disk):
        grace = time.monotonic() + LEFTOVER_GRACE_S  # let loky workers and trackers exit
        while descendants() and time.monotonic() < grace:
            pump(0.02, False)
            reap()
        leftovers = [describe(p) for p in descendants()]
    kill_all()
    end = time.monotonic() + 2.0
    while any(log.open for log in logs.values()) and time.monotonic() < end:
        pump(0.05, False)
    for log in logs.values():
        log.close()
    os.close(pidfd)
    reap()
    if private_tmp:
        _wipe("/tmp")
        _wipe("/dev/shm")
    return {
        "status": "timeout" if timed_out else "disk" if over_disk else ("signal" if os.WIFSIGNALED(status) else "exit"),
        "disk_used_mb": round(disk_used / (1 << 20), 1),
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "seconds": seconds,
        "leftovers": leftovers,
        "cpu_seconds": (usage.ru_utime + usage.ru_stime) if usage else None,
        "max_rss_kb": usage.ru_maxrss if usage else None,
        "stdout_dropped": logs[out_r].dropped,
        "stderr_dropped": logs[err_r].dropped,
    }


def _mount_points() -> set[str]:
    try:
        with open("/proc/self/mountinfo") as f:
            return {line.split()[4] for line in f if len(line.split()) > 4}
    except OSError:
        return set()


def _wipe(folder: str, mounts: set[str] | None = None) -> None:
    """Delete everything in `folder` except mount points (the runs and data binds)."""
    mounts = _mount_points() if mounts is None else mounts
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for name in entries:
        path = os.path.join(folder, name)
        if path in mounts:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            if any(m.startswith(path + "/") for m in mounts):
                _wipe(path, mounts)
            else:
                shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def main(argv: list[str]) -> int:
    preload = [m for m in (argv[argv.index("--preload") + 1].split(",") if "--preload" in argv else []) if m]
    ctl_in = os.fdopen(os.dup(0), "rb")
    ctl_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the worker's own stray prints go to its log, never to the control pipe
    os.close(null)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if "--die-with-parent" in argv:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    private_tmp = "--private-tmp" in argv

    def send(obj: dict[str, Any]) -> None:
        ctl_out.write((json.dumps(obj) + "\n").encode())

    def stop(signum: int, frame: object) -> None:
        kill_all()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        _job_module()
        for module in preload:
            importlib.import_module(module)
    except BaseException as e:  # noqa: BLE001 - tell the parent why the worker cannot start
        send({"ready": False, "error": f"{type(e).__name__}: {e}"})
        return 1
    if "--warmup" in argv:
        module, _, name = argv[argv.index("--warmup") + 1].partition(":")
        try:
            getattr(importlib.import_module(module), name)()
        except Exception:  # noqa: BLE001 - a failed warm-up only costs speed
            traceback.print_exc()
    _prctl(PR_SET_DUMPABLE, 0)
    gc.collect()
    gc.freeze()  # the preloaded objects stay out of every trial's GC: fewer copy-on-write page copies
    send({"ready": True, "pid": os.getpid()})
    ctl = [ctl_in.fileno(), ctl_out.fileno()]
    for line in ctl_in:
        try:
            req = json.loads(line)
            reply = run_one(req, ctl, private_tmp)
        except Exception as e:  # noqa: BLE001 - a broken request must not kill the worker
            kill_all()
            reply = {"status": "error", "error": f"{type(e).__name__}: {e}"}
        send(reply)
    kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
