"""Fault injection: SIGKILL the coordinating process at random points of a solve, resume,
and count what was lost.

    python -m evals.fault_injection --kills 20 [--seed 0] [--json out.json]

Each round runs a real solve in a child process — sandboxed trials, a real chromadb memory,
the scripted LLM with a delay (so LLM calls take wall time), the refit at the end — and
kills it with SIGKILL at a random point of a target phase, taken in turn: a trial, a memory
write, an LLM call, the refit. The child marks each phase it enters in a side file; the
parent kills a random few milliseconds after the k-th (random) entry into the target phase,
and each kill is classified by the phase it really hit. Then the study is resumed to its budget in a fresh process and checked:

- lost: a trial that was COMPLETE before the kill is missing or changed after the resume;
- duplicated: a COMPLETE trial run again (a retry of a trial that had completed);
- budget: the resumed study has exactly its budget of counted trials, none left RUNNING;
- memory: the memory folder opens and answers a query after the resume (and after the kill,
  before the resume).

Goals (issue 16): 0 lost, 0 duplicated, memory opens and answers 100 %."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

BUDGET = 8
CHILD = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    marks = Path(sys.argv[1])

    def mark(phase):
        with open(marks, "a") as f:
            f.write(json.dumps({"t": time.time(), "phase": phase}) + "\\n")
            f.flush()

    def wrap(owner, name, phase):
        orig = getattr(owner, name)
        def inner(*a, **k):
            mark(phase)
            try:
                return orig(*a, **k)
            finally:
                mark("idle")
        setattr(owner, name, inner)

    from hyperpilot import Assistant, Task
    from hyperpilot.agent.llm import ScriptedLLM
    from hyperpilot.core.cv import CrossValidation
    from hyperpilot.memory import Memory
    from hyperpilot.memory.store import Memory as Store
    wrap(CrossValidation, "__call__", "trial")
    wrap(CrossValidation, "refit", "refit")
    wrap(Store, "add_trials", "memory")
    wrap(Store, "add_studies", "memory")
    wrap(Store, "refresh", "memory")
    wrap(ScriptedLLM, "_chat", "llm")
    mode, name = sys.argv[2], sys.argv[3]
    assistant = Assistant(llm=ScriptedLLM(delay=0.3), llm_rate=0.5, memory=Memory(os.environ["FI_MEMORY"]))
    if mode == "solve":
        task = Task(data="sklearn:breast_cancer", models=["decision_tree", "knn"], n_trials=__BUDGET__, cv_folds=3, study_name=name, seed=int(sys.argv[4]))
        assistant.solve(task)
    else:
        assistant.resume(name)
    mark("done")
''').replace("__BUDGET__", str(BUDGET))


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "HYPERPILOT_HOME": str(home), "FI_MEMORY": str(home / "memory"), "HYPERPILOT_HEARTBEAT": "1"}


def _snapshot(home: Path, name: str) -> dict[int, tuple[str, Any, Any]]:
    """number -> (state, params, value) of the study's trials, read in a fresh process."""
    code = (f"import json, optuna; from hyperpilot import studies; s = studies.load_study({name!r}); "
            "print(json.dumps([[t.number, t.state.name, t.params, t.value, t.system_attrs.get('failed_trial')] for t in s.trials]))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(home), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return {}
    return {n: (state, params, value, failed) for n, state, params, value, failed in json.loads(out.stdout.strip().splitlines()[-1])}


def _memory_answers(home: Path) -> bool:
    code = ("from hyperpilot.memory import Memory; m = Memory({!r}).open(create=False); "
            "print(m.count(), len(m.search('breast cancer tumour measurements', 3)))".format(str(home / "memory")))
    out = subprocess.run([sys.executable, "-c", code], env=_env(home), capture_output=True, text=True, timeout=120)
    return out.returncode == 0


PHASES = ("trial", "memory", "llm", "refit")


def _entries(marks: Path, phase: str) -> int:
    try:
        return marks.read_text().count(f'"phase": "{phase}"')
    except OSError:
        return 0


def _phase(marks: Path, at: float) -> str:
    phase = "start"
    if marks.exists():
        for line in marks.read_text().splitlines():
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if m["t"] <= at:
                phase = m["phase"]
    return phase


def one_round(i: int, rng: random.Random, root: Path) -> dict[str, Any]:
    home = root / f"round{i}"
    home.mkdir()
    script = home / "child.py"
    script.write_text(CHILD)
    name = f"fi{i}"
    marks = home / "marks.jsonl"
    if i % 2 and i > 0:  # every other round on a memory that already holds a study
        (home / "memory").mkdir(exist_ok=True)
    target = PHASES[i % len(PHASES)]
    k = 1 if target == "refit" else rng.randint(1, 3)
    offset = rng.uniform(0.0, 0.05)
    child = subprocess.Popen([sys.executable, str(script), str(marks), "solve", name, str(i)], env=_env(home),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start, phase = time.time(), "finished before the kill"
    while child.poll() is None and time.time() - start < 600:
        if _entries(marks, target) >= k:
            time.sleep(offset)
            killed_at = time.time()
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            phase = _phase(marks, killed_at)
            break
        time.sleep(0.005)
    delay = time.time() - start
    before = _snapshot(home, name)
    memory_after_kill = _memory_answers(home) if (home / "memory").exists() else True
    time.sleep(4.5)  # heartbeats are stale after 3 s (SQLite keeps whole seconds)
    resume = subprocess.run([sys.executable, str(script), str(marks), "resume", name], env=_env(home),
                            capture_output=True, text=True, timeout=600)
    after = _snapshot(home, name)
    complete_before = {n: v for n, v in before.items() if v[0] == "COMPLETE"}
    lost = sum(1 for n, v in complete_before.items() if after.get(n, (None,))[0] != "COMPLETE" or after[n][1:3] != v[1:3])
    duplicated = sum(1 for v in after.values() if v[3] is not None and before.get(v[3], after.get(v[3]))[0] == "COMPLETE")
    retried = {v[3] for v in after.values() if v[3] is not None}
    counted = sum(1 for n, v in after.items() if v[0] in ("COMPLETE", "FAIL", "PRUNED") and n not in retried)
    running = sum(1 for v in after.values() if v[0] == "RUNNING")
    return {
        "round": i, "target": f"{target} #{k}", "kill_after_s": round(delay, 2), "phase": phase, "complete_before": len(complete_before),
        "lost": lost, "duplicated": duplicated, "budget_ok": counted == BUDGET and running == 0,
        "resume_ok": resume.returncode == 0, "resume_error": resume.stderr.strip().splitlines()[-1:] if resume.returncode else [],
        "memory_after_kill": memory_after_kill, "memory_after_resume": _memory_answers(home),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hyperpilot-fi-") as tmp:
        for i in range(args.kills):
            row = one_round(i, rng, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        "rounds": len(rows), "kills": sum(r["phase"] != "finished before the kill" for r in rows),
        "phases": {p: sum(r["phase"] == p for r in rows) for p in sorted({r["phase"] for r in rows})},
        "lost": sum(r["lost"] for r in rows), "duplicated": sum(r["duplicated"] for r in rows),
        "budget_ok": sum(r["budget_ok"] for r in rows), "resume_ok": sum(r["resume_ok"] for r in rows),
        "memory_ok": sum(r["memory_after_kill"] and r["memory_after_resume"] for r in rows),
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": rows}, indent=1))
    return 0 if summary["lost"] == 0 and summary["duplicated"] == 0 and summary["memory_ok"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
