"""Trainers: the `Trainer` protocol and its implementations (scikit-learn, custom code)."""

from hyperpilot.trainers import code as _code  # noqa: F401, I001  (registers custom_code, after sklearn)
from hyperpilot.trainers import sklearn as _sklearn  # noqa: F401  (registers the trainers)
from hyperpilot.trainers.base import FittedModel, Trainer, get_trainer, register, trainers

__all__ = ["FittedModel", "Trainer", "get_trainer", "register", "trainers"]
