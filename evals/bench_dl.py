"""Deep-learning trainers (issue 11): seconds per trial of `torch_mlp`, `torch_cnn` and
`lora_text` on this machine, the compute a pruner saves on an MLP study, and LoRA vs full
fine-tuning (trainable parameters). Results go to docs/benchmarks.md by hand, with the
command that made them.

    python -m evals.bench_dl trial      # seconds per trial, each trainer (sandboxed solves)
    python -m evals.bench_dl pruning --trials 12 --seeds 3
    python -m evals.bench_dl params     # LoRA vs full fine-tuning: trainable parameters

`docstring_texts()` is the bundled text task: first lines of the docstrings of installed
modules, labelled `maths` (numpy, math, statistics) or `system` (os, shutil, sockets, …):
real English text, offline, the same on every machine with the same Python and numpy."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MATHS = ("numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma", "math", "statistics", "cmath")
SYSTEM = ("os", "os.path", "shutil", "pathlib", "socket", "subprocess", "tempfile", "glob", "io", "zipfile", "tarfile",
          "http.client", "urllib.request", "signal", "select", "mmap")


def _first_lines(modules: tuple[str, ...]) -> list[str]:
    out: dict[str, None] = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in sorted(dir(module)):
            obj = getattr(module, name, None)
            doc = inspect.getdoc(obj) if not name.startswith("_") and callable(obj) else None
            if not doc:
                continue
            first = " ".join(doc.split("\n\n")[0].split())
            if len(first) >= 25 and not first.startswith(name + "("):
                out[first] = None
    return list(out)


def docstring_texts(n_per_class: int = 150, seed: int = 0) -> pd.DataFrame:
    """`n_per_class` rows per label: columns `text` and `topic` (maths / system)."""
    rng = np.random.default_rng(seed)
    rows = []
    for topic, modules in (("maths", MATHS), ("system", SYSTEM)):
        lines = _first_lines(modules)
        picked = rng.choice(len(lines), size=min(n_per_class, len(lines)), replace=False)
        rows += [{"text": lines[i], "topic": topic} for i in sorted(picked)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _solve(task: Any, pruner: Any = None, sandbox: bool = True) -> Any:
    from hyperpilot.agent.assistant import Assistant
    from hyperpilot.sandbox import InProcessExecutor

    return Assistant(executor=None if sandbox else InProcessExecutor(), memory=False, llm="none", pruner=pruner).solve(task)


def trial_seconds(text_rows: int = 300) -> list[dict[str, Any]]:
    """Each trainer's card default, one sandboxed trial (3-fold CV) and the refit."""
    from hyperpilot.task import Task

    folder = Path(tempfile.mkdtemp())
    docstring_texts(text_rows // 2).to_csv(folder / "texts.csv", index=False)
    cases = [("torch_mlp", "sklearn:breast_cancer", None), ("torch_cnn", "sklearn:digits", None),
             ("lora_text", str(folder / "texts.csv"), "topic")]
    rows = []
    for model, data, target in cases:
        start = time.perf_counter()
        result = _solve(Task(data=data, target=target, models=[model], n_trials=1, cv_folds=3))
        rows.append({"model": model, "data": data.split("/")[-1], "trial_s": round(float(result.trials.seconds.iloc[0]), 1),
                     "solve_s": round(time.perf_counter() - start, 1), "cv": round(result.cv_score, 4),
                     "test": round(float(result.test_score), 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def pruning(n_trials: int, seeds: int, data: str = "sklearn:breast_cancer") -> list[dict[str, Any]]:
    """The same `torch_mlp` study with the card's pruner (Hyperband) and with none: epochs
    trained (every fold counts one per epoch) and the best CV score, per seed. In-process,
    so the numbers are the training work, not the sandbox's start-up."""
    import optuna

    from hyperpilot import studies
    from hyperpilot.task import Task

    rows = []
    for seed in range(seeds):
        for label, pruner in (("hyperband", None), ("off", optuna.pruners.NopPruner())):
            start = time.perf_counter()
            task = Task(data=data, models=["torch_mlp"], n_trials=n_trials, cv_folds=3, seed=seed,
                        study_name=f"bench-dl-{label}-{seed}-{os.getpid()}")
            result = _solve(task, pruner, sandbox=False)
            trials = studies.load_study(result.study_name).trials
            epochs = sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials)
            rows.append({"seed": seed, "pruner": label, "epochs": epochs, "pruned": result.n_pruned,
                         "best_cv": round(result.cv_score, 4), "test": round(float(result.test_score), 4),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def lora_parameters() -> dict[str, int]:
    """Trainable parameters of the bundled MiniLM classifier: LoRA (card default) vs full fine-tuning."""
    from hyperpilot.trainers import get_trainer
    from hyperpilot.trainers.text import base_model_path, lora_network

    config = {**get_trainer("lora_text").card.default_config()}
    net = lora_network(base_model_path(None), 2, config)
    lora = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.get_base_model().parameters())
    lora_weights = sum(p.numel() for n, p in net.named_parameters() if p.requires_grad and "lora_" in n)
    return {"lora_trainable": lora, "of_which_adapters": lora_weights, "full_finetuning_trainable": total}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_dl")
    parser.add_argument("what", choices=("trial", "pruning", "params"))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HYPERPILOT_HOME", tempfile.mkdtemp(prefix="bench-dl-"))
    if args.what == "trial":
        trial_seconds()
    elif args.what == "pruning":
        pruning(args.trials, args.seeds)
    else:
        print(json.dumps(lora_parameters()))


if __name__ == "__main__":
    main()
