"""HEBO, run in its own pinned venv (`bash evals/make_hebo_venv.sh`) as a subprocess that
speaks JSON lines (evals/hebo_worker.py). HEBO's pins (numpy<1.25, old scikit-learn) make
it impossible as a project dependency; the method is skipped with a note when the venv is
absent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from evals.methods.base import Method, Trace, ask_tell
from evals.problems import Problem

VENV_PYTHON = Path(__file__).resolve().parents[1] / ".hebo-venv" / "bin" / "python"
WORKER = Path(__file__).resolve().parents[1] / "hebo_worker.py"


class HEBO(Method):
    name = "hebo"

    def unavailable(self) -> str | None:
        if not VENV_PYTHON.exists():
            return f"HEBO's venv is missing; make it with `bash evals/make_hebo_venv.sh` ({VENV_PYTHON})"
        return None

    def run(self, problem: Problem, budget: int, seed: int) -> Trace:
        proc = subprocess.Popen([str(VENV_PYTHON), str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def call(msg: dict[str, Any]) -> Any:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the HEBO worker stopped; run it by hand to see why")
            return json.loads(line)

        try:
            call({"cmd": "init", "space": problem.space.to_dict(), "seed": seed})
            return ask_tell(problem, budget, lambda: call({"cmd": "ask"}),
                            lambda config, loss: call({"cmd": "tell", "loss": loss}))
        finally:
            proc.kill()
            proc.wait()
