"""The BO engine: any `optuna.samplers.BaseSampler`, or a name from a registry.

`make_sampler("tpe", seed=0, n_trials=30)` builds one of the registered samplers with
hyperpilot's defaults (a random start of a third of the budget, 3–10 trials, for the
model-based ones); `register_sampler(name, factory)` adds a name. An `Assistant(sampler=...)`
or a `Task(sampler=...)` takes either a name or a sampler object."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from hyperpilot.errors import TaskError

SamplerFactory = Callable[[int, int, bool], optuna.samplers.BaseSampler]  # (seed, n_trials, parallel)


def startup_trials(n_trials: int) -> int:
    """How many trials a model-based sampler starts with before its model (random or given)."""
    return max(3, min(10, n_trials // 3))


def _tpe(seed: int, n_trials: int, parallel: bool) -> optuna.samplers.BaseSampler:
    # Optuna's default constant_liar=True: TPE treats running trials as bad, so with several
    # in flight it does not propose the same region twice (and one worker is unaffected)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=startup_trials(n_trials))


def _gp(seed: int, n_trials: int, parallel: bool) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(n_trials))


def _cmaes(seed: int, n_trials: int, parallel: bool) -> optuna.samplers.BaseSampler:
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise TaskError("the cmaes sampler needs the 'cmaes' package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup_trials(n_trials), warn_independent_sampling=False)


SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": _tpe,
    "gp": _gp,
    "random": lambda seed, n, parallel: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed, n, parallel: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    "cmaes": _cmaes,
    "nsga2": lambda seed, n, parallel: optuna.samplers.NSGAIISampler(seed=seed),
}


def register_sampler(name: str, factory: SamplerFactory) -> None:
    """Make `factory(seed, n_trials, parallel)` available as sampler `name`."""
    SAMPLERS[name] = factory


def check_sampler(name: str) -> str:
    if name not in SAMPLERS:
        raise TaskError(f"unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)} (or pass an optuna sampler)")
    return name


def make_sampler(name: str, seed: int, n_trials: int, parallel: bool = False) -> optuna.samplers.BaseSampler:
    """The registered sampler `name`, seeded (any int: folded into numpy's 0..2**32-1)."""
    return SAMPLERS[check_sampler(name)](seed % (2**32 - 1), n_trials, parallel)
