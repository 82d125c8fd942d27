"""PyTorch networks for tables and small images: `torch_mlp` (a multi-layer perceptron on
imputed, standardised, one-hot encoded columns) and `torch_cnn` (a small convolutional
network on pixel columns, e.g. scikit-learn's digits: 64 columns = one 8×8 image).

Preprocessing is fitted on the rows a fold trains on, so cross-validation never leaks.
Training (optimiser, schedule, warm-up, seeding, device) is `torch_base.NetTraining`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from hyperpilot.cards.model import get_model_card
from hyperpilot.errors import DataError
from hyperpilot.task import Task
from hyperpilot.trainers.base import register
from hyperpilot.trainers.sklearn import preprocessor
from hyperpilot.trainers.torch_base import (
    EpochTrainer,
    NetModel,
    NetTraining,
    device_name,
    loss_for,
    seed_everything,
    targets,
)

if TYPE_CHECKING:
    import torch

ACTIVATIONS = ("relu", "gelu", "silu", "tanh")


def activation(name: str) -> torch.nn.Module:
    import torch

    layers: dict[str, type[torch.nn.Module]] = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU,
                                                "tanh": torch.nn.Tanh}
    if name not in layers:
        raise DataError(f"unknown activation '{name}'; use one of {', '.join(ACTIVATIONS)}")
    return layers[name]()


class TabularPrep:
    """Columns → a float32 matrix: `trainers.sklearn.preprocessor` (imputed, standardised,
    one-hot), fitted on the training rows."""

    def __init__(self, X: pd.DataFrame) -> None:
        self.columns = list(X.columns)
        self.pipe = preprocessor(X, scale=True).fit(X)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipe.transform(X[self.columns]), dtype=np.float32)


class TorchMLPTrainer(EpochTrainer):
    """`torch_mlp`: depth × (linear, [batch norm], activation, dropout), then a linear head."""

    def start(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> NetTraining:
        import torch

        device = device_name()
        seed_everything(task.split_seed, device)
        prep = TabularPrep(X)
        inputs = torch.as_tensor(prep.transform(X))
        target, classes, y_mean, y_scale = targets(y, task)
        width, d = int(config["width"]), inputs.shape[1]
        layers: list[torch.nn.Module] = []
        for _ in range(int(config["depth"])):
            layers.append(torch.nn.Linear(d, width))
            if config.get("batch_norm"):
                layers.append(torch.nn.BatchNorm1d(width))
            layers += [activation(str(config["activation"])), torch.nn.Dropout(float(config["dropout"]))]
            d = width
        layers.append(torch.nn.Linear(d, 1 if classes is None else len(classes)))
        net = torch.nn.Sequential(*layers)
        return NetTraining(net, (inputs,), torch.as_tensor(target), loss_for(task), config, task.split_seed, device,
                           lambda: NetModel(net, prep, classes, y_mean, y_scale, device))


def image_shape(X: pd.DataFrame, declared: list[int] | None = None) -> tuple[int, int, int]:
    """(channels, height, width) of the pixel columns of `X`: `declared` when the card
    fixes one, else one square channel; `DataError` (one line) when they do not fit."""
    n = X.shape[1]
    text = [str(c) for c in X.columns if not ptypes.is_numeric_dtype(X[c]) or ptypes.is_bool_dtype(X[c])]
    if text:
        raise DataError(f"torch_cnn needs numeric pixel columns; {len(text)} are not numeric (e.g. '{text[0]}')")
    if declared:
        c, h, w = (int(v) for v in declared)
        if c * h * w != n:
            raise DataError(f"torch_cnn: {n} pixel columns do not make the declared image shape {c}×{h}×{w} "
                            f"({c * h * w} pixels)")
        return c, h, w
    side = math.isqrt(n)
    if side * side != n or side < 2:
        raise DataError(f"torch_cnn needs one square image per row; {n} feature columns are not a square "
                        f"(e.g. 64 = 8×8); drop the other columns or declare image_shape in the card")
    return 1, side, side


class ImagePrep:
    """Pixel columns → (rows, channels, height, width) float32, standardised by the mean and
    spread of the training pixels (missing pixels become the mean)."""

    def __init__(self, X: pd.DataFrame, shape: tuple[int, int, int]) -> None:
        self.columns, self.shape = list(X.columns), shape
        values = X.to_numpy(dtype=np.float64)
        self.mean = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
        self.scale = float(np.nanstd(values)) or 1.0

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        values = (X[self.columns].to_numpy(dtype=np.float64) - self.mean) / self.scale
        values = np.nan_to_num(values, nan=0.0)
        return values.astype(np.float32).reshape(len(values), *self.shape)


class TorchCNNTrainer(EpochTrainer):
    """`torch_cnn`: blocks × (3×3 conv, [batch norm], activation, 2×2 max-pool while the image
    is at least 2 pixels wide), channels doubling per block; dropout; a linear head."""

    def check(self, X: pd.DataFrame, task: Task) -> dict[str, Any]:
        return {"image_shape": image_shape(X, self.card.fixed.get("image_shape"))}

    def start(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> NetTraining:
        import torch

        device = device_name()
        seed_everything(task.split_seed, device)
        shape = image_shape(X, self.card.fixed.get("image_shape"))
        prep = ImagePrep(X, shape)
        inputs = torch.as_tensor(prep.transform(X))
        target, classes, y_mean, y_scale = targets(y, task)
        c, h, w = shape
        layers: list[torch.nn.Module] = []
        for i in range(int(config["blocks"])):
            out = int(config["channels"]) * 2**i
            layers.append(torch.nn.Conv2d(c, out, 3, padding=1))
            if config.get("batch_norm"):
                layers.append(torch.nn.BatchNorm2d(out))
            layers.append(activation(str(config["activation"])))
            if min(h, w) >= 2:
                layers.append(torch.nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        layers += [torch.nn.Flatten(), torch.nn.Dropout(float(config["dropout"])),
                   torch.nn.Linear(c * h * w, 1 if classes is None else len(classes))]
        net = torch.nn.Sequential(*layers)
        return NetTraining(net, (inputs,), torch.as_tensor(target), loss_for(task), config, task.split_seed, device,
                           lambda: NetModel(net, prep, classes, y_mean, y_scale, device))


register(TorchMLPTrainer(get_model_card("torch_mlp")))
register(TorchCNNTrainer(get_model_card("torch_cnn")))
