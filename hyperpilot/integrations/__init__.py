"""hyperpilot inside other tools: warm-starting your own Optuna study (`warm_start`) and
`HyperpilotSampler`, hyperpilot's start plus any Optuna sampler for `optuna.create_study`.
See docs/integrations.md."""

from hyperpilot.integrations.optuna import HyperpilotSampler, ParamMap, fit_value, warm_start

__all__ = ["HyperpilotSampler", "ParamMap", "fit_value", "warm_start"]
