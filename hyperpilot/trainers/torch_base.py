"""What the PyTorch trainers share: `EpochTrainer` (a trainer whose fit is a number of
epochs that `run_job` can step one at a time and report after each), `NetTraining` (one
fold's training: optimiser, LR schedule, warm-up, seeding, device, mixed precision) and
`NetModel` (a fitted network as an estimator with `predict` / `predict_proba`).

Lifecycle of an `EpochTrainer`: `check(X, task)` before the first trial (one clear line
for data the model cannot use); per fold `start(config, X, y, task)` → a `Training`;
`epoch()` `epochs` times; `model()` after any epoch gives the estimator as it is then.
`fit` is `start` + every epoch + `model()` (moved to the CPU, so it pickles anywhere).

Determinism: `torch.set_num_threads(1)` on the CPU, deterministic algorithms, and every
epoch reseeds from (seed, epoch), so a fold trains the same whether it runs alone or in
lockstep with the other folds. CUDA is used when a GPU is visible (bf16 autocast there).
torch is imported inside functions only: the sandbox worker imports `hyperpilot.trainers`
before it forks trials, and must not start torch's thread pools first."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hyperpilot.errors import TrialError
from hyperpilot.task import Task
from hyperpilot.trainers.base import Trainer

if TYPE_CHECKING:
    import torch

SCHEDULES = ("cosine", "one_cycle", "constant")
ONE_CYCLE_RISE = 0.3  # share of the steps over which one-cycle ramps up (at least the warm-up)


class Training:
    """One fold's training in progress."""

    epochs: int
    device: str

    @abstractmethod
    def epoch(self) -> None:
        """Train one more epoch."""

    @abstractmethod
    def model(self) -> Any:
        """The estimator with the weights as they are now (shares them: predict right away);
        it has `cpu()`, which moves it to the CPU and returns it."""


class EpochTrainer(Trainer):
    """A trainer that trains in epochs; `run_job` steps it and reports after every epoch."""

    @abstractmethod
    def start(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Training:
        """Prepare the training of `config` on (X, y): preprocessing fitted, network built, no epoch run."""

    def fit(self, config: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task) -> Any:
        run = self.start(config, X, y, task)
        for _ in range(run.epochs):
            run.epoch()
        return run.model().cpu()  # a fitted model pickles and predicts on any machine


def device_name() -> str:
    """"cuda" when torch sees a GPU (the sandbox passes them with CUDA_VISIBLE_DEVICES), else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int, device: str) -> None:
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)


def lr_factor(step: int, total: int, warmup: float, schedule: str) -> float:
    """The learning-rate multiplier at optimiser step `step` of `total`: a linear warm-up
    over the first `warmup` share of the steps, then constant, cosine to 0, or one-cycle
    (up from 1/25 over max(warm-up, 30 %) of the steps, then cosine down to 0)."""
    if schedule not in SCHEDULES:
        raise TrialError(f"unknown LR schedule '{schedule}'; use one of {', '.join(SCHEDULES)}")
    total = max(total, 1)
    if schedule == "one_cycle":
        rise = max(warmup, ONE_CYCLE_RISE) * total
        if step < rise:
            return 1 / 25 + (1 - 1 / 25) * step / rise
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - rise) / max(total - rise, 1))))
    ramp = warmup * total
    if step < ramp:
        return (step + 1) / (ramp + 1)
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - ramp) / max(total - ramp, 1))))


def make_optimizer(params: Sequence[torch.nn.Parameter], config: dict[str, Any]) -> torch.optim.Optimizer:
    import torch

    name, lr, decay = config.get("optimizer", "adamw"), float(config["lr"]), float(config.get("weight_decay", 0.0))
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=decay, momentum=0.9, nesterov=True)
    raise TrialError(f"unknown optimiser '{name}'; use adamw or sgd")


class NetTraining(Training):
    """Minibatch training of `net` on tensors `inputs` (rows first) against `target`.

    `forward(net, *batch)` gives the outputs of a batch; `loss(outputs, target)`;
    `make_model()` wraps the net as an estimator. config: epochs, batch_size, lr,
    optimizer, weight_decay, schedule, warmup (a share of the steps)."""

    MAX_GRAD_NORM = 5.0

    def __init__(self, net: torch.nn.Module, inputs: tuple[torch.Tensor, ...], target: torch.Tensor,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], config: dict[str, Any], seed: int,
                 device: str, make_model: Callable[[], Any],
                 forward: Callable[..., torch.Tensor] = lambda net, *xs: net(*xs)) -> None:
        import torch

        self.net, self.inputs, self.target, self.loss, self.forward = net.to(device), inputs, target, loss, forward
        self.device, self.seed, self.make_model = device, seed, make_model
        self.epochs = int(config["epochs"])
        self.rows = len(target)
        self.batch = max(1, min(int(config["batch_size"]), self.rows))
        self.drop_single = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
        params = [p for p in net.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, config)
        steps = self.epochs * self._batches_per_epoch()
        warmup, schedule = float(config.get("warmup", 0.0)), str(config.get("schedule", "constant"))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, steps, warmup, schedule))
        self.done = 0

    def _batches_per_epoch(self) -> int:
        n = self.rows // self.batch + (self.rows % self.batch > (1 if self.drop_single else 0))
        return max(n, 1)

    def epoch(self) -> None:
        import torch

        self.net.train()
        torch.manual_seed(self.seed * 1_009 + self.done)  # dropout of this epoch, whatever ran before
        order = torch.randperm(self.rows, generator=torch.Generator().manual_seed(self.seed + 7 * self.done))
        for start in range(0, self.rows, self.batch):
            rows = order[start:start + self.batch]
            if len(rows) == 1 and self.drop_single and self.rows > 1:
                continue  # batch norm cannot train on one row
            batch = [x[rows].to(self.device) for x in self.inputs]
            with autocast(self.device):
                out = self.forward(self.net, *batch)
            loss = self.loss(out.float(), self.target[rows].to(self.device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.requires_grad], self.MAX_GRAD_NORM)
            self.optimizer.step()
            self.scheduler.step()
        self.done += 1

    def model(self) -> Any:
        return self.make_model()


def autocast(device: str) -> Any:
    """bf16 autocast on CUDA (mixed precision), nothing on the CPU."""
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


class NetModel:
    """A fitted network as an estimator. `prepare(X) -> array` is the preprocessing fitted
    on the training rows; outputs are logits over `classes_` (class codes seen in
    training), or one standardised value (regression: `y_mean`, `y_scale`)."""

    def __init__(self, net: torch.nn.Module, prepare: Any, classes: np.ndarray | None,
                 y_mean: float = 0.0, y_scale: float = 1.0, device: str = "cpu") -> None:
        self.net, self.prepare, self.classes_ = net, prepare, classes
        self.y_mean, self.y_scale, self.device = y_mean, y_scale, device

    def cpu(self) -> NetModel:
        self.net = self.net.cpu()
        self.device = "cpu"
        return self

    def _outputs(self, X: pd.DataFrame) -> np.ndarray:
        import torch

        data = torch.as_tensor(np.asarray(self.prepare.transform(X), dtype=np.float32))
        self.net.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(data), 1024):
                with autocast(self.device):
                    out.append(self.net(data[start:start + 1024].to(self.device)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 1 if self.classes_ is None else len(self.classes_)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = self._outputs(X)
        if self.classes_ is None:
            return out[:, 0] * self.y_scale + self.y_mean
        return self.classes_[out.argmax(axis=1)]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if self.classes_ is None:
            raise TrialError("a regression network gives no probabilities")
        return softmax(self._outputs(X))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def targets(y: np.ndarray, task: Task) -> tuple[np.ndarray, np.ndarray | None, float, float]:
    """(training targets, classes seen, y mean, y scale): class indices into the classes
    seen, or standardised values for regression."""
    if task.task_type == "regression":
        values = np.asarray(y, dtype=np.float64)
        mean, scale = float(values.mean()), float(values.std()) or 1.0
        return ((values - mean) / scale).astype(np.float32), None, mean, scale
    classes, index = np.unique(np.asarray(y, dtype=int), return_inverse=True)
    return index.astype(np.int64), classes, 0.0, 1.0


def loss_for(task: Task) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    import torch

    if task.task_type == "regression":
        return lambda out, y: torch.nn.functional.mse_loss(out[:, 0], y)
    return torch.nn.functional.cross_entropy
