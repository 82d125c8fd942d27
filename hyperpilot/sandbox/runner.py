"""`Sandbox`: run a job (a `module:function`) in an isolated, limited, killable process.

Lifecycle:
- `Sandbox(...)` only stores its arguments (no I/O).
- The first `run()` picks the layer (`layers.choose`), makes a private root folder
  (`runs/` writable in the sandbox, `data/` read-only), a cgroup when one can be made,
  and starts the worker inside the layer; the worker imports the preload modules once
  and says it is ready (seconds, once per worker).
- Every `run(target, payload)` makes a fresh run dir, writes `spec.json` (and any extra
  files), asks the worker to fork one trial process for it, waits for the reply (the
  worker enforces the wall-clock deadline and kills the trial's whole tree), reads
  `result.json`, explains a failure in one line and deletes the run dir.
- The worker is replaced after `max_trials_per_worker` jobs, or when it dies or stops
  answering (then the whole sandbox — bwrap, its namespaces, its cgroup — is killed).
- `close()` (also at interpreter exit) kills the worker, removes its cgroup and the root
  folder. What a SIGKILLed process left (root folders, empty cgroups) is swept by the next
  process that starts a sandbox, once their owner pid is dead.
- A failed job's message and traceback are scrubbed (`result.clean_result`) before
  anything else sees them: under the weaker layers a trial can read this machine's files.

One job runs at a time per `Sandbox` (a lock serialises `run`). Workers are started from
one long-lived thread (`_spawn`): the parent-death signal the layers set (bwrap's and the
plain worker's --die-with-parent, setpriv --pdeathsig) fires when the *thread* that started
a process ends, so a worker started by a trial thread used to be SIGKILLed when the study
loop's thread pool shut down (the refit then found it dead, or, under plain, died with it).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import dataclasses
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperpilot.sandbox import layers
from hyperpilot.sandbox.cgroup import PREFIX as CGROUP_PREFIX
from hyperpilot.sandbox.cgroup import CgroupV1
from hyperpilot.sandbox.handle import MAX_RESULT_BYTES, WorkerHandle, minimal_env
from hyperpilot.sandbox.job import RESULT, SPEC
from hyperpilot.sandbox.limits import Limits, MiB, SandboxError
from hyperpilot.sandbox.result import SandboxResult, clean_result, explain, scrub

DEFAULT_PRELOAD = ("hyperpilot.sandbox.executor", "hyperpilot.trainers", "sklearn.model_selection")
DEFAULT_WARMUP = "hyperpilot.sandbox.executor:warmup"
ROOT_PREFIX = "hyperpilot-sandbox-"  # + owner pid + "-" + random: stale ones are swept
WORKER = str(Path(__file__).resolve().parent / "worker.py")
WORKER_HEADROOM_MB = 1024  # the worker's own imports, inside the cgroup next to the trial
REPLY_GRACE_S = 30.0
_LIVE: weakref.WeakSet[Sandbox] = weakref.WeakSet()


class Sandbox:
    """Runs jobs in one worker inside the strongest available isolation layers.

    `layer`: "bwrap", "unshare", "plain" or None (auto; `$HYPERPILOT_SANDBOX` overrides).
    `cgroup`: use a cgroup v1 group when possible (None: unless `$HYPERPILOT_SANDBOX_CGROUP=0`).
    `preload`: modules the worker imports once; `warmup`: a `module:function` it then
    calls once (default: a tiny cross-validation; only with a preload). `extra_ro`: more folders to bind read-only
    (for code the trial imports from outside the Python installation)."""

    def __init__(
        self,
        limits: Limits | None = None,
        layer: str | None = None,
        *,
        cgroup: bool | None = None,
        preload: tuple[str, ...] = DEFAULT_PRELOAD,
        warmup: str | None = DEFAULT_WARMUP,
        max_trials_per_worker: int = 200,
        keep_run_dirs: bool = False,
        extra_ro: tuple[str, ...] = (),
        startup_timeout: float = 300.0,
    ) -> None:
        self.limits = limits or Limits()
        self.requested_layer = layer
        self.use_cgroup = cgroup
        self.preload = preload
        self.warmup = warmup if preload else None
        self.max_trials_per_worker = max_trials_per_worker
        self.keep_run_dirs = keep_run_dirs
        self.extra_ro = extra_ro
        self.startup_timeout = startup_timeout
        self._worker: WorkerHandle | None = None
        self._lock = threading.Lock()
        self._root: Path | None = None
        self._shared: dict[str, Path] = {}
        self._unshared: collections.deque[str] = collections.deque()  # see `unshare_later`
        self._counter = 0

    # -- public -----------------------------------------------------------------------
    @property
    def layer(self) -> str:
        """The layer in use (detected on first use)."""
        return self._worker.layer if self._worker else layers.choose(self.requested_layer)

    def run(self, target: str, payload: dict[str, Any], *, files: dict[str, str | bytes] | None = None,
            timeout: float | None = None, focus: str | None = None, collect: tuple[str, ...] = (),
            on_poll: Callable[[Path], None] | None = None) -> SandboxResult:
        """Run `target(run_dir, payload)` in a fresh trial process; never raises for what
        the job does (only `SandboxError` when the sandbox itself cannot start).

        `files` are written into the run dir first; `collect` names run-dir files to read
        back (plain files, at most the file-size cap) when the job succeeds; `focus` is the
        file whose frames the traceback summary keeps; `on_poll(run_dir)` is called every
        `handle.POLL_S` while the job runs and once after it ended (the report channel)."""
        limits = self.limits.with_timeout(timeout)
        with self._lock:
            self._drop_unshared()
            worker = self._ensure_worker()
            self._counter += 1
            run_dir = Path(tempfile.mkdtemp(prefix=f"run{self._counter:05d}-", dir=worker.root / "runs"))
            try:
                res = self._run_in(worker, run_dir, target, payload, files or {}, limits, focus, on_poll)
                if res.ok and collect:
                    res = _collect(res, run_dir, collect, limits)
                return res
            finally:
                if not self.keep_run_dirs:
                    _empty(worker.root / "runs")
                if self._worker is not None and self._worker.jobs >= self.max_trials_per_worker:
                    self._stop_worker()

    def share(self, key: str, write: Callable[[Path], None]) -> Path:
        """A read-only file for jobs (e.g. the training data), written once per `key` by
        `write(path)`; jobs get its path in their payload."""
        with self._lock:
            self._drop_unshared()
            root = self._ensure_root()
            path = self._shared.get(key)
            if path is None or not path.exists():
                path = root / "data" / f"{key}.bin"
                tmp = path.with_suffix(".tmp")
                write(tmp)
                os.replace(tmp, path)
                self._shared[key] = path
            return path

    def close(self) -> None:
        """Kill the worker and remove every file of this sandbox."""
        with self._lock:
            self._stop_worker()
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None
                self._shared.clear()
                self._unshared.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------
    def _drop_unshared(self) -> None:
        """Forget and delete the shared files `unshare_later` named (the lock is held)."""
        while self._unshared:
            path = self._unshared.popleft()
            for key, p in list(self._shared.items()):
                if str(p) == path:
                    del self._shared[key]
                    p.unlink(missing_ok=True)

    def _ensure_root(self) -> Path:
        if self._root is None:
            _sweep_stale_roots()
            self._root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
            (self._root / "runs").mkdir()
            (self._root / "data").mkdir()
            (self._root / "home").mkdir()
            _LIVE.add(self)
        return self._root

    def _ensure_worker(self) -> WorkerHandle:
        if self._worker is not None and self._worker.proc.poll() is None:
            return self._worker
        if self._worker is not None:
            self._stop_worker()
        root, layer = self._ensure_root(), layers.choose(self.requested_layer)
        limits = self.limits
        home = "/tmp" if layer == "bwrap" else str(root / "home")
        env = minimal_env(home, home, limits.gpus)
        python = [sys.executable, "-I", WORKER, "--preload", ",".join(self.preload)]
        if self.warmup:
            python += ["--warmup", self.warmup]
        cmd = layers.command(layer, python=python, runs=root / "runs", data=root / "data", env=env,
                             gpus=limits.gpus, extra_ro=self.extra_ro, tmp_mb=limits.max_disk_mb)
        cgroup = self._make_cgroup(limits)
        if cgroup is not None:
            cmd = cgroup.wrap(cmd)
        log = open(root / "worker.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = _spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=root,
                          env=env, start_new_session=True, close_fds=True)
        except OSError as e:
            if cgroup is not None:
                cgroup.remove()
            raise SandboxError(f"cannot start the sandbox worker ({layer}): {e}") from e
        finally:
            log.close()
        worker = WorkerHandle(proc, root, cgroup, layer)
        started = time.monotonic()
        ready = worker.read_line(started + self.startup_timeout)
        if not ready or not ready.get("ready"):
            worker.kill()
            why = (ready or {}).get("error") or _tail(root / "worker.log", 600) or "no answer"
            raise SandboxError(f"the sandbox worker ({layer}) did not start: {why}")
        worker.startup_seconds = time.monotonic() - started
        self._worker = worker
        return worker

    def _make_cgroup(self, limits: Limits) -> CgroupV1 | None:
        want = layers.cgroup_wanted() if self.use_cgroup is None else self.use_cgroup
        if not want or not CgroupV1.available():
            return None
        CgroupV1.sweep_stale()
        memory = None if limits.memory_mb is None else (limits.memory_mb + WORKER_HEADROOM_MB) * MiB
        pids = None if limits.max_processes is None else limits.max_processes + 16
        try:
            return CgroupV1.create(f"{CGROUP_PREFIX}{os.getpid()}-{id(self):x}-{time.monotonic_ns()}", memory, pids)
        except OSError:
            return None

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _run_in(self, worker: WorkerHandle, run_dir: Path, target: str, payload: dict[str, Any],
                files: dict[str, str | bytes], limits: Limits, focus: str | None,
                on_poll: Callable[[Path], None] | None = None) -> SandboxResult:
        (run_dir / SPEC).write_text(json.dumps({"target": target, "payload": payload, "focus": focus}), encoding="utf-8")
        for name, content in files.items():
            path = run_dir / name
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        tmp = "/tmp" if worker.layer == "bwrap" else str(run_dir / "tmp")
        if worker.layer != "bwrap":
            (run_dir / "tmp").mkdir()
        rlimits = limits.rlimits()
        if "RLIMIT_NPROC" in rlimits and os.geteuid() != 0:  # the kernel counts every task of the user
            rlimits["RLIMIT_NPROC"] += _user_tasks(os.getuid())
        request = {
            "run_dir": str(run_dir), "timeout": limits.wall_seconds, "rlimits": rlimits,
            "env": minimal_env(str(run_dir), tmp, limits.gpus), "log_cap": limits.max_log_kb * 1024,
            "disk_cap": None if limits.max_disk_mb is None else limits.max_disk_mb * MiB,
        }
        oom_before = worker.cgroup.oom_kills() if worker.cgroup else 0
        start = time.monotonic()
        worker.jobs += 1
        reply = None
        if worker.send(request):
            grace = (limits.wall_seconds + REPLY_GRACE_S) if limits.wall_seconds is not None else None
            poll = None if on_poll is None else (lambda: on_poll(run_dir))
            reply = worker.read_line(None if grace is None else start + grace, poll)
        seconds = time.monotonic() - start
        if on_poll is not None:
            on_poll(run_dir)  # what it reported just before it ended
        oom = bool(worker.cgroup and worker.cgroup.oom_kills() > oom_before)
        if reply is None:
            self._stop_worker()  # dead or hung: kill the whole sandbox, start afresh next time
            kind, error = ("memory", f"memory cap of {limits.memory_mb} MiB exceeded (the cgroup killed the sandbox)") if oom \
                else ("sandbox", "the sandbox worker died or stopped answering; the whole sandbox was killed")
            return SandboxResult(False, error=error, kind=kind, seconds=seconds, layer=worker.layer,
                                 stderr_tail=_tail(run_dir / "stderr.txt"))
        program = files.get(focus) if focus else None
        result = clean_result(_read_result(run_dir / RESULT), str(run_dir), focus,
                              program.decode("utf-8", "replace") if isinstance(program, bytes) else program)
        left = reply.get("leftovers")
        reply["leftovers"] = [scrub(str(x), str(run_dir), 120) for x in left[:20]] if isinstance(left, list) else []
        kind, error = explain(reply, result, limits, oom)
        details = {k: reply.get(k) for k in ("cpu_seconds", "max_rss_kb", "stdout_dropped", "stderr_dropped", "status", "code", "signal")}
        return SandboxResult(
            ok=not kind, value=result.get("value") if result and not kind else None, error=error, kind=kind,
            traceback=str((result or {}).get("traceback", "")), where=str((result or {}).get("where", "")),
            seconds=seconds, layer=worker.layer,
            stdout_tail=_tail(run_dir / "stdout.txt"), stderr_tail=_tail(run_dir / "stderr.txt"),
            leftovers=list(reply.get("leftovers") or []), details=details,
        )


_SPAWN_QUEUE: queue.Queue[tuple[list[str], dict[str, Any], concurrent.futures.Future[subprocess.Popen[bytes]]]] = queue.Queue()
_SPAWNER: list[threading.Thread] = []
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> None:
    while True:
        cmd, kw, done = _SPAWN_QUEUE.get()
        try:
            done.set_result(subprocess.Popen(cmd, **kw))  # noqa: S603 - the worker command built above
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            done.set_exception(e)


def _spawn(cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(cmd, **kw)`, run by a thread that lives as long as this process
    (see the module's docstring)."""
    with _SPAWNER_LOCK:
        if not _SPAWNER or not _SPAWNER[0].is_alive():
            _SPAWNER[:] = [threading.Thread(target=_spawner, name="hyperpilot-sandbox-spawner", daemon=True)]
            _SPAWNER[0].start()
    done: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
    _SPAWN_QUEUE.put((cmd, kw, done))
    return done.result()


def _collect(res: SandboxResult, run_dir: Path, names: tuple[str, ...], limits: Limits) -> SandboxResult:
    cap = (limits.max_file_mb or 1 << 20) * MiB
    files: dict[str, bytes] = {}
    for name in names:
        path = run_dir / name
        if path.is_symlink() or not path.is_file() or path.stat().st_size > cap:
            return dataclasses.replace(res, ok=False, value=None, kind="error",
                                       error=f"the job did not leave a readable {name} in its run dir")
        files[name] = path.read_bytes()
    return dataclasses.replace(res, files=files)


def _sweep_stale_roots() -> None:
    """Remove the root folders of sandboxes whose process died without closing them (a
    SIGKILLed solve: bwrap and the worker die with it, their folder would stay)."""
    tmp = Path(tempfile.gettempdir())
    for folder in tmp.glob(f"{ROOT_PREFIX}*-*"):
        pid = folder.name[len(ROOT_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass


def _user_tasks(uid: int) -> int:
    """Tasks (processes and threads) `uid` runs now: RLIMIT_NPROC counts them all, so a
    trial's process cap is added on top."""
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


def _empty(folder: Path) -> None:
    """Delete everything in `folder` (this run dir and anything a trial left beside it)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_RESULT_BYTES:
            return None
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _tail(path: Path, n: int = 4000) -> str:
    try:
        if path.is_symlink():
            return ""
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


_SHARED: dict[tuple[Any, ...], Sandbox] = {}
_SHARED_LOCK = threading.Lock()


def default_limits(**caps: Any) -> Limits:
    """`Limits()` with this machine's GPUs, and `caps` (e.g. `memory_mb=4096`) changed."""
    return Limits(**{"gpus": layers.gpu_indices() or None, **caps})


def gpu_for_slot(limits: Limits, slot: int) -> Limits:
    """`limits` with one GPU for worker `slot` (CUDA_VISIBLE_DEVICES and device nodes) when
    there are several; unchanged with none or one."""
    if not limits.gpus or len(limits.gpus) < 2:
        return limits
    return dataclasses.replace(limits, gpus=(limits.gpus[slot % len(limits.gpus)],))


def shared_sandbox(limits: Limits | None = None, layer: str | None = None, slot: int = 0, *,
                   untrusted: bool = False) -> Sandbox:
    """One process-wide `Sandbox` per (limits, layer, layer environment, slot, untrusted), so
    that every `SandboxExecutor()` of a process reuses warm workers (slot i: the i-th
    parallel worker). Untrusted trainers get sandboxes of their own, in which nothing is
    ever shared (`Sandbox.share`): a program must not find a trusted job's dataset in its
    data folder. With several GPUs, slot i sees only GPU i (round robin), so parallel
    workers do not share a device. Closed at interpreter exit."""
    limits = gpu_for_slot(limits or default_limits(), slot)
    key = (limits, layer, os.environ.get(layers.ENV_LAYER), os.environ.get(layers.ENV_CGROUP), slot, untrusted)
    with _SHARED_LOCK:
        sandbox = _SHARED.get(key)
        if sandbox is None:
            sandbox = _SHARED[key] = Sandbox(limits, layer)
        return sandbox


def unshare_file(sandbox: Sandbox, path: str) -> None:
    """Forget and delete a file made by `Sandbox.share`."""
    sandbox._unshared.append(path)  # noqa: SLF001 - module-private helper of Sandbox
    with sandbox._lock:  # noqa: SLF001
        sandbox._drop_unshared()  # noqa: SLF001


def unshare_later(sandbox: Sandbox, path: str) -> None:
    """`unshare_file` for a garbage-collection finalizer: never waits for the sandbox's
    lock. A finalizer runs in whatever thread triggers the collection, possibly one inside
    `Sandbox.run` of this very sandbox (waiting would deadlock it) or one holding a lock
    that the job under way needs; so the file is deleted now only if the lock is free, and
    otherwise by the next `run`, `share` or `close`."""
    sandbox._unshared.append(path)  # noqa: SLF001 - module-private helper of Sandbox
    if sandbox._lock.acquire(blocking=False):  # noqa: SLF001
        try:
            sandbox._drop_unshared()  # noqa: SLF001
        finally:
            sandbox._lock.release()  # noqa: SLF001


def clear_shared(sandbox: Sandbox) -> None:
    """Forget and delete every file made by `Sandbox.share` (before an untrusted job runs)."""
    with sandbox._lock:  # noqa: SLF001 - module-private helper of Sandbox
        for p in sandbox._shared.values():  # noqa: SLF001
            Path(p).unlink(missing_ok=True)
        sandbox._shared.clear()  # noqa: SLF001


@atexit.register
def _close_all() -> None:
    for sandbox in list(_LIVE):
        sandbox.close()
