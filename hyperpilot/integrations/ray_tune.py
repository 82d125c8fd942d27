"""hyperpilot's start for your own Ray Tune search: `points_to_evaluate`.

The same start configs as `integrations.optuna.warm_start` (`start_configs`: the model
card's default, the best configs of similar past studies in the trial memory, and an
LLM's initial design when `llm` is given), mapped onto *your* `param_space`: its Tune
domains (`tune.uniform`, `loguniform`, `quniform`, `randint`, `lograndint`, `qrandint`,
`choice`, in nested dicts too) are read as Optuna distributions exactly as Tune's
`OptunaSearch` reads them, names are matched as in `warm_start` (`params={"your_name":
"card_param"}`, else by name after the last `__`, `.`, `/` or `:`), values are cast and
clipped into your domains. Constants, `grid_search` and domains Optuna has no counterpart
for (`tune.randn`, `sample_from`) are left to the search algorithm.

Give the result to any Tune search algorithm that takes `points_to_evaluate` (OptunaSearch,
HyperOptSearch, BasicVariantGenerator, …); Tune evaluates those points first. `ray` is
imported when this is called (Ray Tune must be installed); no Ray needs to be running."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from optuna.distributions import BaseDistribution

from hyperpilot.agent.llm import LLM
from hyperpilot.cards import DatasetCard, ModelCard
from hyperpilot.errors import TaskError
from hyperpilot.integrations.optuna import start_configs
from hyperpilot.memory.store import Memory

log = logging.getLogger("hyperpilot.integrations")


def tune_distributions(param_space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """The Optuna distribution of each Tune domain in `param_space` ("a/b" for nested
    dicts), as `OptunaSearch` converts them; other entries are left out."""
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.variant_generator import parse_spec_vars
    from ray.tune.utils.util import flatten_dict

    _, domains, grids = parse_spec_vars(flatten_dict(dict(param_space), prevent_delimiter=True))
    out: dict[str, BaseDistribution] = {}
    for path, domain in domains:
        name = "/".join(map(str, path))
        try:
            out[name] = OptunaSearch.convert_search_space({"x": domain})["x"]
        except ValueError as e:
            log.info("points_to_evaluate leaves %s to the search algorithm: %s", name, e)
    for path, _ in grids:
        log.info("points_to_evaluate leaves the grid_search %s to Tune", "/".join(map(str, path)))
    return out


def points_to_evaluate(param_space: Mapping[str, Any], model: str | ModelCard, data: Any = None, *,
                       target: str | None = None, dataset_card: DatasetCard | None = None,
                       task_type: str | None = None, metric: str | None = None,
                       memory: Memory | bool | None = True, llm: LLM | str | None = None, n: int = 5,
                       params: Mapping[str, str] | None = None,
                       exclude_datasets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """hyperpilot's start configs for `model` on `data` as Tune `points_to_evaluate` in
    your `param_space`'s names and domains (nested like it): the card default first, then
    up to `n` memory configs, then, with `llm`, the LLM's proposals. `memory=None` and
    `llm=None` need no data (the card default alone). A `param_space` none of whose domains
    matches the card is one `TaskError` line."""
    from ray.tune.utils.util import unflatten_dict

    dists = tune_distributions(param_space)
    if not dists:
        raise TaskError("param_space has no Tune search domain (tune.uniform, tune.choice, …) hyperpilot can fill in")
    configs = start_configs(model, data, target=target, dataset_card=dataset_card, task_type=task_type, metric=metric,
                            memory=memory, llm=llm, n=n, params=params, distributions=dists, study_name="ray-tune",
                            exclude_datasets=exclude_datasets)
    return [unflatten_dict(user) for user, _ in configs]


__all__ = ["points_to_evaluate", "tune_distributions"]
