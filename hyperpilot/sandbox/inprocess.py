"""`InProcessExecutor`: runs jobs in this process — no isolation, no timeout (debugging,
benchmarks, tests). Jobs with a program (`custom_code`) still go to a `SandboxExecutor`:
LLM-written code never runs in the coordinating process."""

from __future__ import annotations

import time
from typing import Any

from hyperpilot.core.executor import Job, JobResult, ReportFn, Response
from hyperpilot.core.types import Stop
from hyperpilot.trainers.run import error_line, run_job


class InProcessExecutor:
    """Runs jobs in this process: no isolation, no timeout (debugging, benchmarks, tests).
    Jobs with a program (`custom_code`) still go to a `SandboxExecutor`: LLM-written code
    never runs in this process."""

    def __init__(self, workers: int = 1, untrusted: Any = None) -> None:
        self.workers = workers
        self._untrusted = untrusted

    def run(self, job: Job, on_report: ReportFn) -> JobResult:
        if job.code is not None:
            if self._untrusted is None:
                from hyperpilot.sandbox.executor import SandboxExecutor

                self._untrusted = SandboxExecutor()
            return self._untrusted.run(job, on_report)  # type: ignore[no-any-return]
        start = time.perf_counter()

        def report(step: int, response: Response) -> None:
            if on_report(step, response):
                raise Stop()

        try:
            fitted = run_job(job, report)
        except Stop:
            return JobResult(False, time.perf_counter() - start, stopped=True)
        except Exception as e:  # noqa: BLE001 - a trial's failure is data, not a crash
            return JobResult(False, time.perf_counter() - start, error_line(e))
        return JobResult(True, time.perf_counter() - start, model=fitted if job.keep_model else None)

    def close(self) -> None:
        if self._untrusted is not None:
            self._untrusted.close()
