"""Deep-learning trainers (issue 11): seconds per trial of `torch_mlp`, `torch_cnn` and
`lora_text` on this machine, the compute a pruner saves on an MLP study and on a LoRA study,
and LoRA vs full fine-tuning (trainable parameters, held-out accuracy). Results go to
docs/benchmarks.md by hand, with the command that made them.

    python -m evals.bench_dl trial      # seconds per trial, each trainer (sandboxed solves)
    python -m evals.bench_dl pruning --trials 12 --seeds 3
    python -m evals.bench_dl lora-pruning --trials 12 --seeds 1 --rows 200 --max-length 32
    python -m evals.bench_dl params     # LoRA vs full fine-tuning: trainable parameters
    python -m evals.bench_dl full-ft --rows 300 --seeds 1   # LoRA vs full fine-tuning: accuracy

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


def pruning(n_trials: int, seeds: int, data: str = "sklearn:breast_cancer", model: str = "torch_mlp",
            target: str | None = None, first_seed: int = 0) -> list[dict[str, Any]]:
    """The same `model` study with the card's pruner (torch_mlp: Hyperband; lora_text:
    successive halving) and with none: epochs trained (every fold counts one per epoch) and
    the best CV score, per seed. In-process, so the numbers are the training work, not the
    sandbox's start-up."""
    import optuna

    from hyperpilot import studies
    from hyperpilot.cards.model import get_model_card
    from hyperpilot.task import Task

    card_pruner = str(get_model_card(model).pruner)
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        for label, pruner in ((card_pruner, None), ("off", optuna.pruners.NopPruner())):
            start = time.perf_counter()
            task = Task(data=data, target=target, models=[model], n_trials=n_trials, cv_folds=3, seed=seed,
                        study_name=f"bench-dl-{label}-{seed}-{os.getpid()}")
            result = _solve(task, pruner, sandbox=False)
            trials = studies.load_study(result.study_name).trials
            epochs = sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials)
            rows.append({"seed": seed, "pruner": label, "epochs": epochs, "pruned": result.n_pruned,
                         "best_cv": round(result.cv_score, 4), "test": round(float(result.test_score), 4),
                         "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def lora_card_at_length(max_length: int) -> str:
    """Register `lora_text` under another name with `max_length` fixed (taken out of the
    space), through the public `trainers.register`: the same trainer and the rest of the
    card's space, default and pruner, so that a LoRA study fits this CPU. Returns the name."""
    from hyperpilot.cards.model import ModelCard, get_model_card
    from hyperpilot.trainers import register
    from hyperpilot.trainers.text import LoraTextTrainer

    card = get_model_card("lora_text")
    name = f"lora_text_len{max_length}"
    register(LoraTextTrainer(ModelCard(
        **{**card.model_dump(exclude={"space", "default", "fixed", "name"}), "name": name,
           "space": {k: v for k, v in card.space.to_dict().items() if k != "max_length"},
           "default": {k: v for k, v in card.default.items() if k != "max_length"},
           "fixed": {**card.fixed, "max_length": max_length}})))
    return name


def lora_pruning(n_trials: int, seeds: int, rows: int, max_length: int, first_seed: int = 0) -> list[dict[str, Any]]:
    """`pruning` for `lora_text` (successive halving vs none) on `rows` rows of the bundled
    text task, with max_length fixed (`lora_card_at_length`)."""
    folder = Path(tempfile.mkdtemp())
    docstring_texts(rows // 2).to_csv(folder / "texts.csv", index=False)
    return pruning(n_trials, seeds, str(folder / "texts.csv"), lora_card_at_length(max_length), "topic", first_seed)


def full_finetuning(rows: int, seeds: int, full_lrs: tuple[float | None, ...] = (None, 5e-5)) -> list[dict[str, Any]]:
    """LoRA (the card's default config) vs full fine-tuning (every weight of the same base
    model + 2-class head trainable, no PEFT) on a stratified 80/20 split of `rows` rows of
    the bundled text task: the trainer's own training loop (`NetTraining`: AdamW, warm-up,
    cosine; same epochs, batch, max_length, seed) and its `TextModel` for prediction; full
    fine-tuning at the LoRA default lr (None) and at each lr of `full_lrs`. Held-out accuracy."""
    import torch
    import transformers
    from sklearn.model_selection import train_test_split

    from hyperpilot.trainers import get_trainer
    from hyperpilot.trainers.text import TextModel, _forward, base_model_path, lora_network, offline
    from hyperpilot.trainers.torch_base import NetTraining, seed_everything

    offline()
    card = get_trainer("lora_text").card
    default = {**card.fixed, **card.default_config()}
    base = base_model_path(None)
    tokenizer = transformers.AutoTokenizer.from_pretrained(base, local_files_only=True)
    frame = docstring_texts(rows // 2)
    out = []
    for seed in range(seeds):
        train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame.topic)
        classes, y = np.unique(train.topic.to_numpy(), return_inverse=True)
        enc = tokenizer(train.text.tolist(), truncation=True, padding="max_length", max_length=int(default["max_length"]),
                        return_tensors="pt")
        arms = [("lora", default["lr"])] + [("full", default["lr"] if lr is None else lr) for lr in full_lrs]
        for kind, lr in arms:
            config = {**default, "lr": float(lr)}
            seed_everything(seed, "cpu")  # the same head initialisation in every arm
            if kind == "lora":
                net = lora_network(base, len(classes), config)
            else:
                net = transformers.AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(classes),
                                                                                      local_files_only=True)
            start = time.perf_counter()
            run = NetTraining(net, (enc["input_ids"], enc["attention_mask"]), torch.as_tensor(y.astype(np.int64)),
                              torch.nn.functional.cross_entropy, config, seed, "cpu", lambda: None, forward=_forward)
            for _ in range(run.epochs):
                run.epoch()
            model = TextModel(net, tokenizer, "text", config, classes, None, "cpu")
            accuracy = float((model.predict(test) == test.topic.to_numpy()).mean())
            out.append({"seed": seed, "kind": kind, "lr": float(lr), "epochs": run.epochs,
                        "trainable": sum(p.numel() for p in net.parameters() if p.requires_grad),
                        "train_rows": len(train), "test_rows": len(test), "accuracy": round(accuracy, 4),
                        "train_s": round(time.perf_counter() - start, 1)})
            print(json.dumps(out[-1]), flush=True)
    return out


def lora_parameters() -> dict[str, int]:
    """Trainable parameters of the bundled MiniLM classifier: LoRA (card default) vs full fine-tuning."""
    from hyperpilot.trainers import get_trainer
    from hyperpilot.trainers.text import base_model_path, lora_network

    config = {**get_trainer("lora_text").card.default_config()}
    net = lora_network(base_model_path(None), 2, config)
    lora = sum(p.numel() for p in net.parameters() if p.requires_grad)
    # the base model as PEFT leaves it holds the adapters and a copy of the head too: leave them out
    total = sum(p.numel() for n, p in net.get_base_model().named_parameters() if "lora_" not in n and "modules_to_save" not in n)
    lora_weights = sum(p.numel() for n, p in net.named_parameters() if p.requires_grad and "lora_" in n)
    return {"lora_trainable": lora, "of_which_adapters": lora_weights, "full_finetuning_trainable": total}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_dl")
    parser.add_argument("what", choices=("trial", "pruning", "lora-pruning", "params", "full-ft"))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="pruning, lora-pruning: seeds first..first+seeds-1")
    parser.add_argument("--rows", type=int, default=200, help="rows of the bundled text task (lora-pruning, full-ft)")
    parser.add_argument("--max-length", type=int, default=32, help="lora-pruning: max_length, fixed")
    args = parser.parse_args()
    os.environ.setdefault("HYPERPILOT_HOME", tempfile.mkdtemp(prefix="bench-dl-"))
    if args.what == "trial":
        trial_seconds()
    elif args.what == "pruning":
        pruning(args.trials, args.seeds, first_seed=args.first_seed)
    elif args.what == "lora-pruning":
        lora_pruning(args.trials, args.seeds, args.rows, args.max_length, args.first_seed)
    elif args.what == "full-ft":
        full_finetuning(args.rows, args.seeds)
    else:
        print(json.dumps(lora_parameters()))


if __name__ == "__main__":
    main()
