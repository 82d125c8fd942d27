"""The joint search space of a study that tunes one or more models.

Optuna sees a categorical `model` parameter and each model's parameters as
`MODEL.PARAM`, so one study can compare models and TPE can model them jointly. This class
is the only place that knows that naming."""

from __future__ import annotations

from typing import Any

import optuna

from hyperpilot.cards.model import ModelCard
from hyperpilot.errors import SpaceError
from hyperpilot.space import CategoricalParam, FloatParam, IntParam


class StudySpace:
    def __init__(self, cards: list[ModelCard]) -> None:
        self.cards = {c.name: c for c in cards}

    @property
    def models(self) -> list[str]:
        return list(self.cards)

    def suggest(self, trial: optuna.trial.BaseTrial) -> tuple[str, dict[str, Any]]:
        """Draw (or read back, for an enqueued trial) the model and its config."""
        model = str(trial.suggest_categorical("model", self.models))
        config: dict[str, Any] = {}
        for p in self.cards[model].space.params:
            key = f"{model}.{p.name}"
            if isinstance(p, FloatParam):
                config[p.name] = trial.suggest_float(key, p.low, p.high, log=p.log)
            elif isinstance(p, IntParam):
                config[p.name] = trial.suggest_int(key, p.low, p.high, log=p.log)
            elif isinstance(p, CategoricalParam):
                config[p.name] = trial.suggest_categorical(key, p.choices)  # type: ignore[arg-type]
        return model, config

    def to_params(self, model: str, config: dict[str, Any]) -> dict[str, Any]:
        """Validated Optuna params for (model, config); raises `SpaceError`."""
        if model not in self.cards:
            raise SpaceError(f"model '{model}' is not tuned in this study; it tunes {self.models}")
        valid = self.cards[model].space.validate(config)
        return {"model": model, **{f"{model}.{k}": v for k, v in valid.items()}}

    def from_params(self, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        model = str(params["model"])
        prefix = f"{model}."
        return model, {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    def enqueue(self, study: optuna.Study, model: str, config: dict[str, Any], source: str, **attrs: Any) -> None:
        """Queue a config to be tried next, tagged with where it came from."""
        study.enqueue_trial(self.to_params(model, config), user_attrs={"source": source, **attrs})
