"""`SandboxExecutor`: the `core.executor.Executor` that runs every job in a `Sandbox`.

Lifecycle: constructing it stores its arguments (no I/O, no process). It holds `workers`
sandboxes (each one warm worker process, started on first use, or by `warm()` in the
background ahead of it); a `run` takes a free one.
Each `run(job, on_report)`:

1. *trusted* trainers (hyperpilot's own): the training data (X, y) is written once per
   dataset into the sandbox's read-only data folder and the whole job (every fold) runs in
   one trial process;
   *untrusted* ones (a `custom_code` program, a user's trainer): one trial process per
   fold, given only that fold's fit rows with their labels and the rows to predict — so
   the program never sees a label it is scored on. They run in sandboxes of their own
   (`shared_sandbox(..., untrusted=True)`), whose data folder never holds a shared
   dataset (under bwrap a trial sees only its own sandbox's folders);
2. the trial writes each fold's predictions as `reports/STEP.npz` in its run dir. For a
   trusted job this process reads them while the trial runs (`Sandbox.run(on_poll=...)`),
   hands them to `on_report` (the coordinator scores them) and, when told to stop, writes
   `stop`, which the trial's next report obeys (the timeout bounds one that does not).
   For an untrusted fold only `reports/00000.npz` counts, read once its process has
   ended (so files a program writes ahead of, or for other steps than, its own fold are
   never scored); a report is loaded without pickles and with its size bounded;
3. a job with a `stop_at` (a time budget's end) that is still running then is killed and
   comes back `stopped` (what it reported until then stands);
4. a failure comes back as one reason line ("timed out after 30 s", "network access is
   blocked …", "ValueError: … (at fit:12)"), with the summarised traceback of a program in
   `attrs["traceback"]`. It never raises for what a trial does. What a trial writes
   besides its predictions (a `result.json` with a score, say) is never believed.

`close()` stops the sandboxes this executor made (shared ones die with the process).
`warn_weak_sandbox(executor)` logs, once per call (a solve makes one), the one-line warning
of a layer weaker than bubblewrap.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import secrets
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hyperpilot.core.executor import Job, JobResult, ReportFn
from hyperpilot.core.types import Stop
from hyperpilot.sandbox import layers
from hyperpilot.sandbox.limits import Limits, MiB
from hyperpilot.sandbox.result import SandboxResult
from hyperpilot.sandbox.runner import Sandbox, clear_shared, shared_sandbox, unshare_file, unshare_later
from hyperpilot.task import Task

log = logging.getLogger("hyperpilot.sandbox")
MAX_ERROR_CHARS = 500
PROGRAM_FILE = "program.py"
TRAINER_FILE = "trainer.pkl"
DATA_FILE = "data.pkl"
MODEL_FILE = "model.pkl"
REPORTS = "reports"
STOP_FILE = "stop"
OUT_OF_TIME = "stopped at the end of the time budget"
CUSTOM_CODE = "custom_code"


def outcome_error(res: SandboxResult) -> str:
    """One line: the reason, with where a raised error came from ("ValueError: ... (at fit:12)")."""
    text = f"{res.error} (at {res.where})" if res.kind == "error" and res.where else res.error
    return " ".join(text.split())[:MAX_ERROR_CHARS]


def trainer_ref(model: str) -> tuple[dict[str, Any], dict[str, str | bytes], bool]:
    """(payload keys, run-dir files, trusted) that tell a trial process which trainer to
    use: hyperpilot's own by module name (trusted); a trainer registered in this process
    but not importable in the sandbox (a script, a notebook, a test) by value (cloudpickle);
    an installed one by module name. Only hyperpilot's own trainers are trusted."""
    from hyperpilot.trainers import trainers

    trainer = trainers().get(model)
    if trainer is None:
        return {"model": model}, {}, False
    name = type(trainer).__module__
    if name.startswith("hyperpilot."):
        return {"model": model, "trainer_module": name}, {}, True
    module = sys.modules.get(name)
    path = os.path.realpath(getattr(module, "__file__", "") or "")
    if path and any(path.startswith(p + os.sep) for p in layers.python_binds()):
        return {"model": model, "trainer_module": name}, {}, False
    import cloudpickle

    by_value = module is not None and name != "__main__"
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return {"model": model, "trainer": TRAINER_FILE}, {TRAINER_FILE: bytes(cloudpickle.dumps(trainer))}, False
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


class SandboxExecutor:
    """Runs each job in sandboxed processes (see `hyperpilot.sandbox`).

    `workers`: jobs that may run at once (one sandbox worker each, and one more each for
    untrusted trainers once one runs). `limits` caps every trial process (default:
    `Limits()` with the machine's GPUs); `trial_timeout` is the wall-clock limit of one job
    (all its fold processes together; without it each process has `limits.wall_seconds`);
    `layer` forces "bwrap", "unshare" or "plain". Without `sandbox`, the process-wide
    `shared_sandbox(limits, layer, slot)` workers are used, so executors of a process share
    warm workers; pass a `Sandbox` to own the (single) worker: untrusted jobs then run in
    it too, after its shared data files are deleted."""

    def __init__(self, limits: Limits | None = None, *, trial_timeout: float | None = None,
                 layer: str | None = None, sandbox: Sandbox | None = None, workers: int = 1) -> None:
        self.limits = limits
        self.trial_timeout = trial_timeout
        self.layer = layer
        self.workers = 1 if sandbox is not None else workers
        self._given = sandbox
        self._pools: dict[bool, queue.Queue[Sandbox]] = {}  # trusted? -> free sandboxes
        self._data: dict[int, tuple[Any, Any, str]] = {}  # id(sandbox) -> (X, y, shared path)
        self._lock = threading.Lock()
        self._warmed = False

    @property
    def sandbox(self) -> Sandbox:
        """The first sandbox (for callers that run one job of their own)."""
        return self._given or shared_sandbox(self.limits, self.layer)

    def _sandboxes(self, trusted: bool) -> queue.Queue[Sandbox]:
        """The free sandboxes for trusted, or for untrusted, jobs (one pool when `sandbox` was given)."""
        key = True if self._given is not None else trusted
        with self._lock:
            free = self._pools.get(key)
            if free is None:
                free = self._pools[key] = queue.Queue()
                for slot in range(self.workers):
                    free.put(self._given or shared_sandbox(self.limits, self.layer, slot, untrusted=not trusted))
            return free

    def warm(self) -> None:
        """Start the workers of hyperpilot's own trainers now, each from a background thread,
        and return at once: their start-up (seconds: imports, a warm-up fit) then overlaps
        what the caller does meanwhile, and the first trial finds its worker ready or part
        started. Once per executor; a worker that cannot start says why when a trial runs."""
        with self._lock:
            if self._warmed:
                return
            self._warmed = True
        boxes = [self._given] if self._given is not None else [
            shared_sandbox(self.limits, self.layer, slot) for slot in range(self.workers)]
        for box in boxes:
            threading.Thread(target=_start_worker, args=(box,), name="hyperpilot-warm", daemon=True).start()

    def run(self, job: Job, on_report: ReportFn) -> JobResult:
        start = time.perf_counter()
        try:
            payload, files, trusted = self._payload(job)
        except Exception as e:  # noqa: BLE001 - a job never raises (an unpicklable trainer, ...)
            return JobResult(False, time.perf_counter() - start, _line(e))
        free = self._sandboxes(trusted)
        sandbox = free.get()
        try:
            if trusted:
                return self._trusted(sandbox, payload, files, job, on_report, start)
            return self._untrusted(sandbox, payload, files, job, on_report, start)
        except Exception as e:  # noqa: BLE001 - a job never raises (SandboxError, ...)
            return JobResult(False, time.perf_counter() - start, _line(e))
        finally:
            free.put(sandbox)

    def _payload(self, job: Job) -> tuple[dict[str, Any], dict[str, str | bytes], bool]:
        """(the payload, the run-dir files, trusted?) of `job`."""
        payload: dict[str, Any] = {"config": job.config, "task": job.task.model_dump(mode="json"), "seed": job.seed,
                                   "responses": list(job.responses), "n_classes": job.n_classes, "keep_model": job.keep_model}
        files: dict[str, str | bytes] = {}
        if job.code is not None:
            ref, trusted = {"model": job.model, "program": PROGRAM_FILE}, False
            files[PROGRAM_FILE] = job.code
        else:
            ref, extra, trusted = trainer_ref(job.model)
            files.update(extra)
        payload.update(ref)
        return payload, files, trusted

    def _trusted(self, sandbox: Sandbox, payload: dict[str, Any], files: dict[str, str | bytes], job: Job,
                 on_report: ReportFn, start: float) -> JobResult:
        """Every fold in one trial process that reads the shared data; reports read while it runs."""
        payload = {**payload, "data": self._shared_data(sandbox, job.X, job.y),
                   "folds": [[f.tolist(), None if p is None else p.tolist()] for f, p in job.folds]}
        if job.X_new is not None:
            files = {**files, "new.pkl": pickle.dumps(job.X_new, protocol=pickle.HIGHEST_PROTOCOL)}
        timeout, at_deadline = self._limit(job, 0.0)
        if timeout is not None and timeout <= 0:
            return JobResult(False, 0.0, OUT_OF_TIME, stopped=True)
        return self._one(sandbox, payload, files, job, on_report, 0, start, timeout, trusted=True, at_deadline=at_deadline)[0]

    def _limit(self, job: Job, spent: float) -> tuple[float | None, bool]:
        """The seconds the next trial process may run (None: no limit): what is left of
        `trial_timeout` after `spent`, or the time to `job.stop_at` when that comes first; and
        whether `stop_at` is the bound."""
        left = None if self.trial_timeout is None else self.trial_timeout - spent
        if job.stop_at is not None:
            until = job.stop_at - time.perf_counter()
            if left is None or until < left:
                return until, True
        return left, False

    def _untrusted(self, sandbox: Sandbox, payload: dict[str, Any], files: dict[str, str | bytes], job: Job,
                   on_report: ReportFn, start: float) -> JobResult:
        """One trial process per fold, given only that fold's fit labels; `trial_timeout`
        bounds the time of all of them together (not the start of a sandbox worker)."""
        clear_shared(sandbox)  # a given sandbox may hold a trusted job's (X, y): never next to a program
        spent = 0.0
        attrs: dict[str, Any] = {}
        res = JobResult(True, 0.0)
        for step, (fit, pred) in enumerate(job.folds):
            timeout, at_deadline = self._limit(job, spent)
            if timeout is not None and timeout <= 0:
                res = (JobResult(False, 0.0, OUT_OF_TIME, stopped=True) if at_deadline
                       else JobResult(False, 0.0, f"{_timed_out(self.trial_timeout)} before fold {step} started"))
                break
            X_pred = job.X.iloc[pred] if pred is not None else job.X_new
            fold = {**files, DATA_FILE: pickle.dumps((job.X.iloc[fit], job.y[fit], X_pred), protocol=pickle.HIGHEST_PROTOCOL)}
            res, seconds = self._one(sandbox, {**payload, "folds": [[list(range(len(fit))), None]]}, fold, job, on_report,
                                     step, start, timeout, rows=len(X_pred) if X_pred is not None else None,
                                     at_deadline=at_deadline)
            spent += seconds
            attrs.update(res.attrs)
            if not res.ok:
                break
        return JobResult(res.ok, time.perf_counter() - start, res.error, res.stopped, res.model, attrs)

    def _one(self, sandbox: Sandbox, payload: dict[str, Any], files: dict[str, str | bytes], job: Job,
             on_report: ReportFn, first_step: int, start: float, timeout: float | None, trusted: bool = False,
             rows: int | None = 0, at_deadline: bool = False) -> tuple[JobResult, float]:
        """One trial process: (how it ended, the seconds it ran). Trusted: its reports (one
        per fold, or per fold and epoch) are read while it runs. Untrusted (one fold): its one report
        is read after it ended (None `rows`: a refit that predicts nothing, no report).
        `at_deadline`: `timeout` ends at the job's `stop_at`, so running out of it is a stop."""
        seen: list[int] = []
        stopped: list[bool] = []
        broken: list[str] = []
        n_steps = None if trusted else 1  # a trusted job may report every fold after every epoch
        cap = (sandbox.limits.max_file_mb or 64) * MiB
        if not trusted:  # predictions of `rows` rows: at most a float per class and kind, and some room
            cap = min(cap, 8 * max(rows or 0, 1) * max(job.n_classes or 1, 1) * len(job.responses) + 64 * 1024)

        def poll(run_dir: Path) -> None:
            folder = run_dir / REPORTS
            while not stopped and (n_steps is None or len(seen) < n_steps):
                path = folder / f"{len(seen):05d}.npz"
                if folder.is_symlink() or path.is_symlink() or not path.is_file():
                    return
                seen.append(len(seen))
                try:
                    response = load_report(path.read_bytes(), cap)
                except (OSError, ValueError) as e:
                    broken.append(str(e))
                if broken or on_report(first_step + len(seen) - 1, response):
                    stopped.append(True)
                    (run_dir / STOP_FILE).write_text("stop", encoding="utf-8")

        report = f"{REPORTS}/{0:05d}.npz"
        collect = ((MODEL_FILE,) if job.keep_model else ()) + (() if trusted or rows is None else (report,))
        res = sandbox.run("hyperpilot.sandbox.executor:fold_job", payload, files=files, timeout=timeout,
                          focus=PROGRAM_FILE, collect=collect, on_poll=poll if trusted else None)
        seconds = time.perf_counter() - start
        attrs: dict[str, Any] = {"sandbox": res.layer} if res.layer else {}
        if res.ok and not trusted and rows is not None:
            try:
                if on_report(first_step, load_report(res.files[report], cap)):
                    stopped.append(True)
            except ValueError as e:
                broken.append(str(e))
        if broken:
            return JobResult(False, seconds, f"the trial's report of fold {first_step + max(len(seen) - 1, 0)} is unreadable: {broken[0]}",
                             attrs=attrs), res.seconds
        if stopped:
            return JobResult(False, seconds, stopped=True, attrs=attrs), res.seconds
        if res.kind == "timeout" and at_deadline:
            return JobResult(False, seconds, OUT_OF_TIME, stopped=True, attrs=attrs), res.seconds
        if not res.ok:
            if job.code is not None and res.traceback:
                attrs["traceback"] = res.traceback  # the repair loop feeds it back to the code writer
            error = _timed_out(self.trial_timeout) if res.kind == "timeout" and self.trial_timeout else outcome_error(res)
            return JobResult(False, seconds, error, attrs=attrs), res.seconds
        model = None
        if job.keep_model:
            blob = res.files[MODEL_FILE]
            # a trusted trainer's model is loaded here; a program's stays bytes, run only in the sandbox
            model = pickle.loads(blob) if trusted else SandboxedModel(payload, blob, job.code, files.get(TRAINER_FILE))  # noqa: S301
        return JobResult(True, seconds, model=model, attrs=attrs), res.seconds

    def _shared_data(self, sandbox: Sandbox, X: pd.DataFrame, y: np.ndarray) -> str:
        """The pickle of (X, y) that trusted jobs read; written once per dataset and sandbox
        (again after an untrusted job in the same sandbox deleted it)."""
        with self._lock:
            known = self._data.get(id(sandbox))
            if known is not None and known[0] is X and known[1] is y and Path(known[2]).exists():
                return known[2]

            def write(path: Path) -> None:
                with open(path, "wb") as f:
                    pickle.dump((X, y), f, protocol=pickle.HIGHEST_PROTOCOL)

            if known is not None:
                unshare_file(sandbox, known[2])
            path = str(sandbox.share(f"data-{secrets.token_hex(6)}", write))
            self._data[id(sandbox)] = (X, y, path)
            weakref.finalize(self, unshare_later, sandbox, path)  # runs at GC, in any thread: must not block
            return path

    def close(self) -> None:
        """Delete this executor's data files; stop the worker if this executor owns it."""
        with self._lock:
            for _, _, path in self._data.values():
                for s in ([self._given] if self._given else []) + [shared_sandbox(self.limits, self.layer, i) for i in range(self.workers)]:
                    unshare_file(s, path)
            self._data.clear()
        if self._given is not None:
            self._given.close()


def warn_weak_sandbox(executor: object) -> str | None:
    """Log (logger "hyperpilot.sandbox", WARNING) and return the one-line warning when the
    layer a `SandboxExecutor` runs trials in is weaker than bubblewrap (what is not
    isolated, how to install bubblewrap); None for bwrap and for other executors. A forced
    layer that is missing is left to fail, with its own error, when the first trial starts."""
    if not isinstance(executor, SandboxExecutor):
        return None
    try:
        layer = executor._given.layer if executor._given is not None else layers.choose(executor.layer)  # noqa: SLF001
    except Exception:  # noqa: BLE001 - SandboxError: reported when a trial starts
        return None
    text = layers.weak_layer_warning(layer)
    if text:
        log.warning(text)
    return text


def _start_worker(sandbox: Sandbox) -> None:
    """Start `sandbox`'s worker by running a no-op job in it (a trial that comes meanwhile
    waits for it, on the sandbox's lock)."""
    try:
        sandbox.run("hyperpilot.sandbox.executor:noop", {})
    except Exception as e:  # noqa: BLE001 - the first trial reports a sandbox that cannot start
        log.debug("starting a sandbox worker ahead of the trials failed: %s", e)


def noop(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """A job that does nothing (`SandboxExecutor.warm` starts a worker with it)."""
    return {}


def _line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:MAX_ERROR_CHARS]


def _timed_out(seconds: float | None) -> str:
    return f"timed out after {seconds:g} s (wall-clock limit of the trial); the whole process tree was killed"


def load_report(blob: bytes, cap: int) -> dict[str, np.ndarray]:
    """The arrays of a trial's `reports/STEP.npz`: no pickles, at most `cap` bytes
    unpacked (a zip bomb is refused before it is inflated); `ValueError` says why not."""
    import io
    import zipfile

    try:
        if len(blob) > cap:
            raise ValueError(f"it is larger than {cap} bytes")
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            if sum(i.file_size for i in z.infolist()) > cap:
                raise ValueError(f"it unpacks to more than {cap} bytes")
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{type(e).__name__}: {e}"[:200]) from None
    except ValueError as e:
        raise ValueError(str(e)[:200]) from None


class SandboxedModel:
    """A model fitted by an untrusted trainer (a program): kept as pickled bytes and only
    ever unpickled inside the sandbox, where `predict` / `predict_proba` run."""

    def __init__(self, payload: dict[str, Any], model: bytes, program: str | None = None,
                 trainer: str | bytes | None = None) -> None:
        self.payload = {k: v for k, v in payload.items() if k in ("model", "program", "trainer", "trainer_module")}
        self.model = model
        self.program = program
        self.trainer = trainer

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._run(X, "predict")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._run(X, "proba")

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self._run(X, "decision")

    def _run(self, X: pd.DataFrame, kind: str) -> np.ndarray:
        from hyperpilot.errors import TrialError

        files: dict[str, str | bytes] = {MODEL_FILE: self.model, "new.pkl": pickle.dumps(X, protocol=pickle.HIGHEST_PROTOCOL)}
        if self.program is not None:
            files[PROGRAM_FILE] = self.program
        if self.trainer is not None:
            files[TRAINER_FILE] = self.trainer
        res = shared_sandbox(untrusted=True).run("hyperpilot.sandbox.executor:predict_job", {**self.payload, "kind": kind}, files=files,
                                   focus=PROGRAM_FILE, collect=("out.npy",))
        if not res.ok:
            raise TrialError(f"predicting in the sandbox failed: {outcome_error(res)}")
        import io

        return np.load(io.BytesIO(res.files["out.npy"]), allow_pickle=False)


# -- inside the trial process ---------------------------------------------------------------
def _trainer(run_dir: Path, payload: dict[str, Any]) -> Any:
    if payload.get("program"):
        from hyperpilot.trainers.code import ProgramTrainer

        return ProgramTrainer.from_file(run_dir / payload["program"])
    if payload.get("trainer"):
        with open(run_dir / payload["trainer"], "rb") as f:
            return pickle.load(f)  # noqa: S301 - sent by the parent
    import importlib

    from hyperpilot.trainers import get_trainer

    if payload.get("trainer_module"):
        importlib.import_module(payload["trainer_module"])  # registers trainers not in hyperpilot.trainers
    return get_trainer(payload["model"])


def fold_job(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Fit and predict each fold; predictions go out as `reports/STEP.npz` (never a score)."""
    from hyperpilot.trainers.run import run_job

    X_new = None
    if payload.get("data"):
        with open(payload["data"], "rb") as f:
            X, y = pickle.load(f)  # noqa: S301 - written by the parent, read-only here
        if (run_dir / "new.pkl").exists():
            with open(run_dir / "new.pkl", "rb") as f:
                X_new = pickle.load(f)  # noqa: S301 - written by the parent
    else:
        with open(run_dir / DATA_FILE, "rb") as f:
            X, y, X_new = pickle.load(f)  # noqa: S301 - written by the parent
    folds = [(np.asarray(a, dtype=int), None if b is None else np.asarray(b, dtype=int)) for a, b in payload["folds"]]
    job = Job(model=payload["model"], config=payload["config"], task=Task.model_validate(payload["task"]), X=X,
              y=np.asarray(y), folds=folds, responses=tuple(payload["responses"]), seed=int(payload["seed"]),
              X_new=X_new, n_classes=payload.get("n_classes"), keep_model=bool(payload.get("keep_model")))
    (run_dir / REPORTS).mkdir(exist_ok=True)

    def report(step: int, response: dict[str, np.ndarray]) -> None:
        tmp = run_dir / REPORTS / f".{step:05d}.tmp.npz"
        np.savez(tmp, **response)  # type: ignore[arg-type]
        os.replace(tmp, run_dir / REPORTS / f"{step:05d}.npz")
        if (run_dir / STOP_FILE).exists():
            raise Stop()

    try:
        fitted = run_job(job, report, _trainer(run_dir, payload))
    except Stop:
        return {"stopped": True}
    if payload.get("keep_model"):
        with open(run_dir / MODEL_FILE, "wb") as out:
            pickle.dump(fitted, out, protocol=pickle.HIGHEST_PROTOCOL)
    return {"stopped": False}


def predict_job(run_dir: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Predict with a model fitted in an earlier sandboxed run (an untrusted trainer's)."""
    from hyperpilot.trainers.run import predictions

    _trainer(run_dir, payload)  # a program's or trainer's classes must resolve when unpickling
    with open(run_dir / MODEL_FILE, "rb") as f:
        model = pickle.load(f)  # noqa: S301 - made by this trainer in an earlier sandboxed run
    with open(run_dir / "new.pkl", "rb") as f:
        X = pickle.load(f)  # noqa: S301 - written by the parent
    out = predictions(model, X, (payload["kind"],), None)[payload["kind"]]
    np.save(run_dir / "out.npy", np.asarray(out, dtype=float), allow_pickle=False)
    return {}


def warmup() -> None:
    """Run once in the worker, before it forks trials: fills what scikit-learn and pandas
    load lazily on first use (narwhals, pyarrow's pandas bridge, the trainers' pipelines),
    so no trial pays for it. Uses no OpenMP model: GNU OpenMP is not fork-safe once its
    thread pool has started."""
    from hyperpilot.cards import get_model_card
    from hyperpilot.trainers import get_trainer

    X = pd.DataFrame({"a": np.arange(40, dtype=float), "b": ["x", "y", "z", "w"] * 10})
    y = np.array([0, 1] * 20)
    task = Task.model_validate({"data": "warmup", "metric": "roc_auc", "cv_folds": 2}).resolved("binary")
    for model in ("logistic_regression", "decision_tree"):
        fitted = get_trainer(model).fit(get_model_card(model).default_config(), X, y, task)
        fitted.predict_proba(X)
