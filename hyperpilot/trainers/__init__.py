"""Trainers: the `Trainer` protocol and its implementations (scikit-learn for now)."""

from hyperpilot.trainers import sklearn as _sklearn  # noqa: F401  (registers the trainers)
from hyperpilot.trainers.base import Evaluation, FittedModel, Trainer, get_trainer, register, trainers

__all__ = ["Evaluation", "FittedModel", "Trainer", "get_trainer", "register", "trainers"]
