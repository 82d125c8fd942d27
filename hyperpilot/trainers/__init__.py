"""Trainers: the `Trainer` protocol and its implementations (scikit-learn, PyTorch, custom code)."""

from hyperpilot.trainers import code as _code  # noqa: F401, I001  (registers custom_code, after sklearn)
from hyperpilot.trainers import sklearn as _sklearn  # noqa: F401  (registers the trainers)
from hyperpilot.trainers import torch_nets as _torch_nets  # noqa: F401  (registers torch_mlp, torch_cnn; torch loads lazily)
from hyperpilot.trainers import text as _text  # noqa: F401  (registers lora_text; transformers loads lazily)
from hyperpilot.trainers.base import FittedModel, Trainer, get_trainer, register, trainers

__all__ = ["FittedModel", "Trainer", "get_trainer", "register", "trainers"]
