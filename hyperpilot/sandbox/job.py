"""What runs inside the forked trial process: read `spec.json`, call the target, write
`result.json`. Results travel only as this file, never through stdout.

`spec.json` is `{"target": "package.module:function", "payload": {...}, "focus": "program.py"}`;
the target is called as `function(run_dir: Path, payload: dict) -> JSON-able value`.
`result.json` is `{"ok": true, "value": ...}` or `{"ok": false, "error_type", "error",
"errno", "traceback"}` where `traceback` is a short summary (see `summarise_traceback`).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

RESULT = "result.json"
SPEC = "spec.json"
MAX_TRACEBACK_CHARS = 1500


def summarise_traceback(exc: BaseException, focus: str | None = None, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """A few lines an LLM (or a person) can act on: the exception, then the frames in the
    `focus` file (e.g. `program.py`) with their source lines, then the innermost frame.
    Frames of the standard library and of hyperpilot's own plumbing are left out."""
    frames = traceback.extract_tb(exc.__traceback__)
    picked = [f for f in frames if focus and os.path.basename(f.filename) == focus]
    if frames and frames[-1] not in picked:
        picked.append(frames[-1])
    message = str(exc).strip().splitlines()
    head = f"{type(exc).__name__}: {message[0] if message else ''}".rstrip(": ")
    lines = [head]
    for f in picked[-6:]:
        lines.append(f"  {os.path.basename(f.filename)}, line {f.lineno}, in {f.name}")
        if f.line:
            lines.append(f"    {f.line.strip()[:160]}")
    if len(message) > 1:
        lines.append("  " + " ".join(m.strip() for m in message[1:4])[:300])
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def where(exc: BaseException, focus: str | None = None) -> str:
    """`function:line` of the innermost frame (as `tools.train.run_trial` reports it),
    plus the innermost frame of the `focus` file when that is another one."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    out = f"{frames[-1].name}:{frames[-1].lineno}"
    mine = [f for f in frames if focus and os.path.basename(f.filename) == focus]
    if mine and mine[-1] is not frames[-1]:
        out += f", from {focus} line {mine[-1].lineno} in {mine[-1].name}"
    return out


def _error(exc: BaseException, focus: str | None) -> dict[str, Any]:
    message = str(exc).strip().splitlines()
    return {
        "ok": False,
        "error_type": type(exc).__name__,
        "error": (message[0] if message else "")[:500],
        "errno": getattr(exc, "errno", None),
        "where": where(exc, focus),
        "traceback": summarise_traceback(exc, focus),
    }


def _write(run_dir: Path, result: dict[str, Any]) -> None:
    tmp = run_dir / ".result.tmp"
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, run_dir / RESULT)


def _stop_loky() -> None:
    """Shut down joblib's reusable loky executor so its workers exit with the trial."""
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None) if module else None
    if executor is not None:
        try:
            executor.shutdown(wait=True)
        except Exception:  # noqa: BLE001 - best effort; the worker kills what is left
            pass


def exec_file(run_dir: Path, payload: dict[str, Any]) -> Any:
    """A job that runs the script `run_dir/payload["file"]` and returns its global `RESULT`
    (debugging, tests, one-off programs)."""
    import runpy

    return runpy.run_path(str(run_dir / payload["file"]), run_name="__sandboxed__").get("RESULT")


def run_job(run_dir: str | os.PathLike[str]) -> int:
    """Run the job described by `run_dir/spec.json`; always writes `result.json` unless the
    process is killed. Returns the exit code for the trial process."""
    folder = Path(run_dir)
    focus: str | None = None
    try:
        spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
        focus = spec.get("focus")
        module, _, name = str(spec["target"]).partition(":")
        here = module in (__name__, "hyperpilot.sandbox.job")  # this file may be loaded by path
        function = getattr(sys.modules[__name__] if here else importlib.import_module(module), name)
        value = function(folder, spec.get("payload", {}))
        try:
            _write(folder, {"ok": True, "value": value})
        except (TypeError, ValueError) as e:
            _write(folder, _error(TypeError(f"the job's result is not JSON: {e}"), None))
    except BaseException as e:  # noqa: BLE001 - MemoryError, SystemExit and friends are trial errors too
        try:
            _write(folder, _error(e, focus))
        except BaseException:  # noqa: BLE001 - e.g. the file-size cap; stderr still has it
            traceback.print_exc()
            return 71
    finally:
        _stop_loky()
    return 0
