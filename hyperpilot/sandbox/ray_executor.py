"""`RayExecutor`: the `core.executor.Executor` that runs each trial job as a Ray task.

Each job is one Ray task (`num_cpus=cpus`, and `num_gpus` when the job trains in epochs
on a cluster with GPUs) that runs the job through a `SandboxExecutor` inside the Ray
worker process: the very same sandboxed trainer as on this machine (isolation, limits,
the trial timeout, trusted scoring here). The Ray worker keeps its sandbox warm between
tasks; the training data goes into Ray's object store once per dataset.

The report channel: the task is a streaming generator (`num_returns="streaming"`) that
yields each fold's predictions as the sandbox reads them, and finally the `JobResult`;
this process hands every report to `on_report` in order (the coordinator scores it). A
True answer (prune) is sent to a small stop-flag actor of this executor; the task asks it
after each report and answers the sandbox "stop" once it is set, so the trial stops at
its next report, as it does in a local `SandboxExecutor` (whose stop file the trial also
reads at its next report). A job's `stop_at` (the time budget's end) travels as the seconds
left, and the worker's sandbox kills the trial then. Reports that arrive after a stop are not passed on. Memory and
study writes stay in the coordinator: only the loop writes.

Starting or connecting (`connect_ray`): `address` "auto" (or None) connects to
`$RAY_ADDRESS` when it is set, else reuses a Ray already initialised in this process, else
starts a local Ray that stays on loopback: before `import ray` it sets
`RAY_USAGE_STATS_ENABLED=0`, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (the node address is
127.0.0.1) and `RAY_AUTH_MODE=disabled`, and writes `~/ray_bootstrap_config.yaml` with
`provider: {type: local}` when there is none (Ray's dashboard process reads that file by
name, also with the dashboard off, and probes cloud-metadata addresses off the machine
when it is missing); no dashboard, one CPU per core of this machine. Any other `address`
(`HOST:PORT` of a cluster's head) is checked with one TCP connect first: an address that
is malformed or that nothing answers on is one `ClusterError` line, not Ray's two-minute
retry and traceback. `import ray` happens only in here, and only when a Ray is needed.

Lifecycle: constructing it stores its arguments; `warm()` connects (a bad address fails
here, before any trial) and starts one sandbox in each of `workers` Ray workers in the
background; `run` may be called from several threads at once; `close()` kills the
stop-flag actor and shuts down a local Ray this executor started.

Trainers run by name in the Ray worker: hyperpilot's own, or a `custom_code` program (as
in the local sandbox, one process per fold); a trainer registered only in this process
(a notebook's) is not known there."""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hyperpilot.core.executor import Job, JobResult, ReportFn
from hyperpilot.errors import ClusterError
from hyperpilot.sandbox.limits import Limits

log = logging.getLogger("hyperpilot.sandbox")
LOOPBACK_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
BOOTSTRAP = "ray_bootstrap_config.yaml"
CONNECT_TIMEOUT_S = 5.0
MAX_ERROR_CHARS = 500
_LOCK = threading.Lock()
_NO_X = pd.DataFrame()
_NO_Y = np.empty(0)


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return " ".join(f"{type(e).__name__}: {text[0] if text else ''}".split())[:MAX_ERROR_CHARS]


def _machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _host_port(address: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT`; one `ClusterError` line otherwise."""
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"--ray {address!r} is not a Ray address; give HOST:PORT of the cluster's head "
                           "(e.g. 10.0.0.5:6379, what `ray start --head` prints), or auto for a local Ray")
    return host.strip("[]"), int(port)


def connect_ray(address: str | None = "auto") -> bool:
    """Connect to the Ray at `address`, or start a local one (see the module docstring);
    True when this call started a local Ray. Raises `ClusterError` (one line)."""
    target = os.environ.get("RAY_ADDRESS") if address in (None, "auto") else address
    cluster = bool(target) and target not in ("auto", "local")
    if cluster:
        _reachable(str(target))  # also when a Ray is up here: a wrong address is the user's to hear about
    with _LOCK:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            return False
        if cluster:
            _connect(str(target))
            return False
        _start_local()
        return True


def _reachable(address: str) -> None:
    """One TCP connect to the head (seconds), instead of Ray's two-minute retry and exit."""
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}; check the address "
                           "(the head's HOST:PORT) and that `ray start --head` runs there") from None


def _connect(address: str) -> None:
    import ray

    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - Ray exits the process when the GCS never answers
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {_line(e)}") from None


def _start_local() -> None:
    os.environ.update(LOOPBACK_ENV)
    if "ray" in sys.modules:  # imported before: its constant was read then; the processes it starts read the env
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    bootstrap = Path.home() / BOOTSTRAP
    if not bootstrap.exists():
        try:
            bootstrap.write_text("provider: {type: local}\n", encoding="utf-8")
            log.info("wrote %s (provider: local), so that Ray does not probe cloud-metadata addresses", bootstrap)
        except OSError as e:
            log.warning("cannot write %s (%s): the local Ray may probe cloud-metadata addresses", bootstrap, e.strerror)
    import ray

    try:
        ray.init(num_cpus=_machine_cpus(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as e:  # noqa: BLE001 - Ray's many start-up failures, as one line
        raise ClusterError(f"cannot start a local Ray: {_line(e)}") from None


class _Stops:
    """The stop flags of one executor's running jobs (a Ray actor): set by the coordinator,
    read by the tasks after each report."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def stop(self, key: str) -> None:
        self.keys.add(key)

    def stopped(self, key: str) -> bool:
        return key in self.keys

    def forget(self, key: str) -> None:
        self.keys.discard(key)


class RayExecutor:
    """Runs each job as a Ray task that runs it in a sandbox on a Ray worker.

    `address`: "auto" (default: `$RAY_ADDRESS`, else a Ray already initialised here, else
    a local one on loopback) or a cluster's `HOST:PORT`. `workers`: jobs at once (the
    loop's `workers`). `cpus` per trial (a Ray resource; Ray also sets the trial's thread
    count to it); `gpus` per trial (default: 1 for a model that trains in epochs — torch,
    LoRA — when the cluster has GPUs, else 0). `limits`, `trial_timeout`, `layer` as for
    `SandboxExecutor`; default limits are those of the node a trial runs on."""

    def __init__(self, address: str | None = "auto", *, workers: int = 1, cpus: float = 1.0,
                 gpus: float | None = None, limits: Limits | None = None, trial_timeout: float | None = None,
                 layer: str | None = None) -> None:
        self.address = address
        self.workers = workers
        self.cpus = cpus
        self.gpus = gpus
        self.limits = limits
        self.trial_timeout = trial_timeout
        self.layer = layer
        self._lock = threading.Lock()
        self._remote: Any = None  # (the task, the stop-flag actor, the cluster's GPUs) once connected
        self._started = False
        self._data: tuple[Any, Any, Any] | None = None  # (X, y, their object ref)

    def connect(self) -> None:
        """Connect to (or start) the Ray; `ClusterError` (one line) when it cannot."""
        with self._lock:
            if self._remote is not None:
                return
            self._started = connect_ray(self.address)
            import ray

            task = ray.remote(max_calls=0, max_retries=0)(_trial_task)  # max_calls=0: GPU workers stay warm too
            stops = ray.remote(num_cpus=0)(_Stops).remote()
            self._remote = (task, stops, float(ray.cluster_resources().get("GPU", 0)))

    def warm(self) -> None:
        """Connect now, then start a sandbox in each of `workers` Ray workers in the background."""
        self.connect()
        import ray

        warm = ray.remote(max_retries=0)(_warm_task).options(num_cpus=self.cpus)
        for _ in range(self.workers):
            warm.remote(self._settings())

    def _settings(self) -> tuple[Limits | None, float | None, str | None]:
        return self.limits, self.trial_timeout, self.layer

    def _gpus_for(self, job: Job, cluster_gpus: float) -> float:
        if self.gpus is not None:
            return self.gpus
        from hyperpilot.trainers import trainers
        from hyperpilot.trainers.torch_base import EpochTrainer

        epochs = job.code is None and isinstance(trainers().get(job.model), EpochTrainer)
        return 1.0 if epochs and cluster_gpus > 0 else 0.0

    def _put(self, job: Job) -> Any:
        """The object ref of (X, y), put into the object store once per dataset."""
        import ray

        with self._lock:
            if self._data is None or self._data[0] is not job.X or self._data[1] is not job.y:
                self._data = (job.X, job.y, ray.put((job.X, job.y)))
            return self._data[2]

    def run(self, job: Job, on_report: ReportFn) -> JobResult:
        start = time.perf_counter()
        key = secrets.token_hex(8)
        stopped = False
        result: JobResult | None = None
        try:
            self.connect()
            import ray

            task, stops, cluster_gpus = self._remote
            options = {"num_returns": "streaming", "num_cpus": self.cpus, "num_gpus": self._gpus_for(job, cluster_gpus)}
            # stop_at is this process's clock: it travels as the seconds left, another node's clock differs
            bare = dataclasses.replace(job, X=_NO_X, y=_NO_Y, stop_at=None)
            left = None if job.stop_at is None else job.stop_at - time.perf_counter()
            for ref in task.options(**options).remote(bare, [self._put(job)], key, stops, self._settings(), left):
                item = ray.get(ref)
                if isinstance(item, JobResult):
                    result = item
                    break
                if not stopped and on_report(*item):
                    stopped = True
                    stops.stop.remote(key)
        except ClusterError as e:
            return JobResult(False, time.perf_counter() - start, str(e))
        except Exception as e:  # noqa: BLE001 - a lost worker or node fails the trial, not the study
            return JobResult(False, time.perf_counter() - start, f"the Ray task failed: {_line(e)}")
        finally:
            if stopped:
                stops.forget.remote(key)
        seconds = time.perf_counter() - start
        if stopped:
            return JobResult(False, seconds, stopped=True, attrs=result.attrs if result is not None else {})
        if result is None:
            return JobResult(False, seconds, "the Ray task ended without a result")
        return dataclasses.replace(result, seconds=seconds)

    def close(self) -> None:
        """Kill the stop-flag actor; shut down the local Ray if this executor started it."""
        with self._lock:
            remote, self._remote, self._data = self._remote, None, None
            started, self._started = self._started, False
        if remote is None:
            return
        import ray

        if ray.is_initialized():
            ray.kill(remote[1])
            if started:
                ray.shutdown()


# -- inside the Ray worker ------------------------------------------------------------------
_WORKER_LOCK = threading.Lock()
_EXECUTORS: dict[Any, Any] = {}  # (limits, timeout, layer) -> SandboxExecutor, one per Ray worker process
_DATA: list[tuple[str, pd.DataFrame, np.ndarray]] = []  # the last dataset: the same objects keep the sandbox's data file


def _worker_executor(settings: tuple[Limits | None, float | None, str | None], gpus: tuple[int, ...] | None) -> Any:
    from hyperpilot.sandbox.executor import SandboxExecutor
    from hyperpilot.sandbox.runner import default_limits

    limits, timeout, layer = settings
    limits = dataclasses.replace(limits or default_limits(), gpus=gpus)  # only the GPUs Ray gave this task
    with _WORKER_LOCK:
        executor = _EXECUTORS.get((limits, timeout, layer))
        if executor is None:
            executor = _EXECUTORS[(limits, timeout, layer)] = SandboxExecutor(limits, trial_timeout=timeout, layer=layer)
        return executor


def _worker_data(ref: Any) -> tuple[pd.DataFrame, np.ndarray]:
    import ray

    with _WORKER_LOCK:
        if _DATA and _DATA[0][0] == ref.hex():
            return _DATA[0][1], _DATA[0][2]
        X, y = ray.get(ref)
        _DATA[:] = [(ref.hex(), X, y)]
        return X, y


def _warm_task(settings: tuple[Limits | None, float | None, str | None]) -> None:
    """Start this Ray worker's sandbox (a no-op job), so the first trial finds it warm."""
    _worker_executor(settings, None).sandbox.run("hyperpilot.sandbox.executor:noop", {})


def _trial_task(job: Job, data: list[Any], key: str, stops: Any,
                settings: tuple[Limits | None, float | None, str | None], left: float | None = None) -> Iterator[Any]:
    """Run `job` in this worker's sandbox, stopped after `left` seconds when given (the time
    budget's end, `Job.stop_at` on this worker's clock); yield (step, response) per report,
    then the JobResult."""
    import ray

    X, y = _worker_data(data[0])
    job = dataclasses.replace(job, X=X, y=y, stop_at=None if left is None else time.perf_counter() + left)
    executor = _worker_executor(settings, tuple(int(g) for g in ray.get_gpu_ids()) or None)
    out: queue.Queue[Any] = queue.Queue()

    def on_report(step: int, response: dict[str, np.ndarray]) -> bool:
        out.put((step, response))
        return bool(ray.get(stops.stopped.remote(key)))

    def work() -> None:
        try:
            res = executor.run(job, on_report)
        except BaseException as e:  # noqa: BLE001 - run never raises; if it did, the coordinator must still hear
            res = JobResult(False, 0.0, _line(e))
        out.put(dataclasses.replace(res, attrs={**res.attrs, "ray_node": ray.util.get_node_ip_address()}))

    threading.Thread(target=work, name="hyperpilot-ray-trial", daemon=True).start()
    while True:
        item = out.get()
        yield item
        if isinstance(item, JobResult):
            return


__all__ = ["LOOPBACK_ENV", "RayExecutor", "connect_ray"]
