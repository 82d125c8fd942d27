"""hyperpilot inside other tools: warm-starting your own Optuna study (`warm_start`) and
`HyperpilotSampler`, hyperpilot's start plus any Optuna sampler for `optuna.create_study`;
`points_to_evaluate` for a Ray Tune search (`ray_tune`). See docs/integrations.md."""

from hyperpilot.integrations.optuna import HyperpilotSampler, ParamMap, fit_value, start_configs, warm_start
from hyperpilot.integrations.ray_tune import points_to_evaluate

__all__ = ["HyperpilotSampler", "ParamMap", "fit_value", "points_to_evaluate", "start_configs", "warm_start"]
