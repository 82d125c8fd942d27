"""The hostile-program set of tests/test_sandbox_hostile.py under every sandbox layer
available here, with each attack's verdict per layer.

    nice .venv/bin/python -m evals.hostile_layers [--json out.json]

Each attack is a `custom_code` trial of one real solve (sklearn:iris, 2-fold CV) whose
program tries one thing (reach the network, read a secret file or the parent's environment,
write outside its run dir, fork-bomb, allocate 30 GB, loop forever, leave a daemon, kill
the parent, …). Verdict: "blocked" when the trial failed with the reason the attack should
meet, "failed (other reason)" when it failed otherwise, "NOT BLOCKED" when it completed.
The exit status is 1 when a verdict differs from `EXPECTED` (what each layer is documented
to stop: bwrap everything; unshare no network, no view of this process, but files are
readable and writable; plain only limits, time and memory)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

WEAK_FILES = {"read_secret", "write_outside"}
EXPECTED_OPEN = {"bwrap": set(), "unshare": WEAK_FILES, "plain": WEAK_FILES | {"connect_loopback", "resolve_dns"}}


def _suite() -> Any:
    path = Path(__file__).resolve().parents[1] / "tests" / "test_sandbox_hostile.py"
    spec = importlib.util.spec_from_file_location("hostile_suite", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_layer(layer: str, suite: Any) -> dict[str, str]:
    from hyperpilot import Assistant, Task, studies
    from hyperpilot.sandbox import SandboxExecutor
    from hyperpilot.trainers.code import CUSTOM_CODE

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HYPERPILOT_HOME"] = tmp
        os.environ["HYPERPILOT_TEST_API_KEY"] = suite.SECRET
        (Path(tmp) / "secret.txt").write_text(suite.SECRET)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        attacks = suite.attacks(Path(tmp), listener.getsockname()[1])
        programs = {name: suite.HEAD + code for name, (code, _) in attacks.items()}
        executor = SandboxExecutor(suite.TEST_LIMITS, trial_timeout=4, layer=layer)
        task = Task(data="sklearn:iris", models=["decision_tree", CUSTOM_CODE], cv_folds=2, n_trials=len(programs) + 3, seed=1)
        try:
            result = Assistant(llm="none", memory=False, proposers=[suite.Attacker(programs)], executor=executor).solve(task)
        finally:
            listener.close()
            executor.close()
        trials = {t.user_attrs.get("attack"): t for t in studies.load_study(result.study_name).trials if t.user_attrs.get("attack")}
        out = {}
        for name, (_, kinds) in attacks.items():
            t = trials.get(name)
            if t is None:
                out[name] = "not run"
            elif t.state.name == "COMPLETE":
                out[name] = "NOT BLOCKED"
            elif any(suite._kind_text(k) in t.user_attrs.get("error", "") for k in kinds):
                out[name] = "blocked"
            else:
                out[name] = f"failed (other reason: {t.user_attrs.get('error', '')[:60]})"
        if (Path(tmp) / "escaped.txt").exists():
            out["write_outside"] = "NOT BLOCKED (file written)"
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from hyperpilot.sandbox import layers

    available = [name for name, ok in (("bwrap", layers.bwrap_status()[0]), ("unshare", layers.unshare_status()[0]),
                                       ("plain", True)) if ok]
    suite = _suite()
    table = {layer: run_layer(layer, suite) for layer in available}
    names = sorted({n for col in table.values() for n in col})
    print("| attack | " + " | ".join(available) + " |")
    print("|---|" + "---|" * len(available))
    for n in names:
        print(f"| {n} | " + " | ".join(table[layer].get(n, "") for layer in available) + " |")
    surprises = [(layer, n, v) for layer in available for n, v in table[layer].items()
                 if (v == "blocked") == (n in EXPECTED_OPEN[layer])]
    print(f"verdicts as expected: {sum(len(c) for c in table.values()) - len(surprises)} of "
          f"{sum(len(c) for c in table.values())}" + (f"; unexpected: {surprises}" if surprises else ""))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main())
