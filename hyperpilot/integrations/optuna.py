"""hyperpilot's start for your own Optuna study: `warm_start` and `HyperpilotSampler`.

Both start where hyperpilot's own loop starts (`core.proposer`): the model card's default
config, then the best configs of similar past studies in the trial memory (mapped into the
card's space, `memory.retrieve`), then, with an LLM, the planner's initial design
(`agent.policy.LLMProposer`). Those configs are in the card's parameter names; they are
mapped onto *your* parameter names and distributions:

- `params={"your_name": "card_param"}` says it explicitly; a name left out is matched by
  name (case-insensitive, after the last `__`, `.`, `/` or `:`, so `svc__C` is the svm
  card's `C`); a parameter of yours that matches nothing is left to the inner sampler;
- a value is cast and clipped into your distribution (int, float with step, log or not;
  a categorical takes the equal choice, else the nearest number); a value that cannot fit
  (a word for a number) leaves that parameter out, with a log note.

`warm_start(study, ...)` enqueues the configs (`study.enqueue_trial`); `HyperpilotSampler`
serves them as the first trials of any `study.optimize` and then hands over to an inner
sampler (TPE by default), and writes every finished trial into the memory from this
process (`after_trial`; under the memory's lock, or into its journal while another process
holds it)."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hyperpilot.agent.llm import LLM
from hyperpilot.agent.policy import LLMProposer, memory_examples
from hyperpilot.cards import DatasetCard, ModelCard, get_model_card
from hyperpilot.core.proposer import CardDefaults, Proposer, StudyContext
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Suggestion
from hyperpilot.data import infer_task_type, load_dataset
from hyperpilot.errors import HyperpilotError, SpaceError, TaskError
from hyperpilot.memory.proposer import MemoryProposer
from hyperpilot.memory.records import StudyEntry, TrialEntry
from hyperpilot.memory.retrieve import study_text
from hyperpilot.memory.store import Memory, MemoryBusy
from hyperpilot.task import Task

log = logging.getLogger("hyperpilot.integrations")
WARM_ATTR = "hyperpilot_warm"  # user attr of a trial that ran a warm-start config: its source and card config (JSON)
LLM_CONFIGS = 2  # the planner's initial design when an LLM is given


class CannotMap(HyperpilotError):
    """A value that does not fit the user's distribution (the parameter is left out)."""


# ---------------------------------------------------------------------------- names and values
def _norm(name: str) -> str:
    return re.split(r"__|[.:/]", name)[-1].lower().replace("-", "_")


class ParamMap:
    """Which card parameter each of the user's parameter names stands for."""

    def __init__(self, card: ModelCard, params: Mapping[str, str] | None = None) -> None:
        self.card = card
        self.explicit = dict(params or {})
        names = card.space.names
        for user, theirs in self.explicit.items():
            if theirs not in names:
                raise TaskError(f"params maps {user!r} to {theirs!r}, which model card '{card.name}' does not have; "
                                f"it has {', '.join(names)}")
        self._auto = {_norm(n): n for n in names if n not in self.explicit.values()}

    def card_name(self, user: str) -> str | None:
        """The card parameter `user` stands for, or None (left to the inner sampler)."""
        return self.explicit.get(user) or self._auto.get(_norm(user))

    def check(self, names: Iterable[str]) -> dict[str, str]:
        """user name -> card name for the study's parameters `names`; a mapping that names a
        parameter the study lacks, or no match at all, is one `TaskError` line."""
        names = list(names)
        missing = [u for u in self.explicit if u not in names]
        if missing:
            raise TaskError(f"params names {', '.join(map(repr, missing))}, but the study has no such parameter; "
                            f"it has {', '.join(names)}")
        mapped = {u: c for u in names if (c := self.card_name(u)) is not None}
        if not mapped:
            raise TaskError(f"none of the study's parameters ({', '.join(names)}) match model card "
                            f"'{self.card.name}' ({', '.join(self.card.space.names)}); "
                            "pass params={'your_name': 'card_param'}")
        return mapped

    def default_distributions(self) -> dict[str, BaseDistribution]:
        """The card's own distributions under the user's names (for a study with no trial yet)."""
        dists = self.card.space.distributions()
        by_card = {c: u for u, c in self.explicit.items()}
        return {by_card.get(c, c): d for c, d in dists.items()}


def fit_value(value: Any, dist: BaseDistribution) -> Any:
    """`value` cast and clipped into `dist`; raises `CannotMap` (one line) when it cannot fit."""
    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if type(choice) is type(value) and choice == value:
                return choice
        for choice in dist.choices:
            if str(choice) == str(value):
                return choice
        numbers = [c for c in dist.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        x = _number(value)
        if numbers and x is not None:
            logs = x > 0 and all(c > 0 for c in numbers)
            return min(numbers, key=lambda c: abs(math.log(c) - math.log(x)) if logs else abs(c - x))
        raise CannotMap(f"{value!r} is not one of {list(dist.choices)}")
    number = _number(value)
    if number is None:
        raise CannotMap(f"{value!r} is not a number")
    if isinstance(dist, IntDistribution):
        i = min(max(round(number), dist.low), dist.high)
        i = dist.low + round((i - dist.low) / dist.step) * dist.step
        return int(min(i, dist.high))
    if isinstance(dist, FloatDistribution):
        f = min(max(number, dist.low), dist.high)
        if dist.step is not None:
            f = min(dist.low + round((f - dist.low) / dist.step) * dist.step, dist.high)
        return float(f)
    raise CannotMap(f"the distribution {type(dist).__name__} is not supported")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def to_user(config: Mapping[str, Any], mapping: Mapping[str, str],
            dists: Mapping[str, BaseDistribution]) -> tuple[dict[str, Any], list[str]]:
    """A card config as the user's params (names in `mapping`, values fitted to `dists`),
    and notes on what was left out."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    for user, card_name in mapping.items():
        if card_name not in config or user not in dists:
            continue
        try:
            out[user] = fit_value(config[card_name], dists[user])
        except CannotMap as e:
            notes.append(f"{user} (card {card_name}): {e}")
    return out, notes


# ---------------------------------------------------------------------------- the start configs
class _Setup:
    """The model card, the task and dataset card (when there is data) and the name mapping."""

    def __init__(self, model: str | ModelCard, data: Any, target: str | None, dataset_card: DatasetCard | None,
                 task_type: str | None, metric: str | None, params: Mapping[str, str] | None, needs_data: bool) -> None:
        name = model.name if isinstance(model, ModelCard) else model
        self.task: Task | None = None
        self.dataset_card = dataset_card
        if data is not None:
            task = Task(data=data, target=target, models=[name], metric=metric, task_type=task_type)  # type: ignore[arg-type]
            loaded = load_dataset(task.data, task.target, encoding=task.encoding, frame=task.frame)
            kind = task.task_type or infer_task_type(loaded.y)
            self.task = task.resolved(kind)
            self.dataset_card = DatasetCard.profile(loaded, kind)
        elif dataset_card is not None:
            task = Task(data=dataset_card.name, target=dataset_card.target, models=[name], metric=metric,
                        task_type=dataset_card.task_type)
            self.task = task.resolved(dataset_card.task_type)
        elif needs_data:
            raise TaskError("warm-starting from the memory or an LLM needs data= (a path, sklearn:NAME, a DataFrame "
                            "or (X, y)) or dataset_card=; pass memory=None and llm=None for the card default alone")
        kind_of = self.task.task_type if self.task is not None else task_type
        self.card = model if isinstance(model, ModelCard) else get_model_card(model, kind_of)  # type: ignore[arg-type]
        self.map = ParamMap(self.card, params)

    def suggestions(self, study_name: str, memory: Memory | None, llm: LLM | str | None, n: int,
                    exclude_datasets: Iterable[str] = ()) -> list[Suggestion]:
        """What hyperpilot's loop would queue on a fresh study: the card default, up to `n`
        memory configs, then the LLM's initial design (each proposer sees the ones before)."""
        if self.task is None:
            return [Suggestion(self.card.name, self.card.default_config(), "default")]
        task = self.task.model_copy(update={"study_name": study_name, "n_trials": max(3, 3 * n)})
        scratch = optuna.create_study(direction=task.direction)  # in memory: the proposers' view of "planned"
        space = StudySpace([self.card])
        ctx = StudyContext(task, scratch, space, self.dataset_card)
        proposers: list[Proposer] = [CardDefaults()]
        warm = (MemoryProposer(memory, k=n, write=False, exclude_datasets=exclude_datasets)
                if memory is not None and n > 0 else None)
        if warm is not None:
            proposers.append(warm)
        if llm is not None:
            proposers.append(LLMProposer(llm, rate=0.0, n_initial=LLM_CONFIGS, summarise=False,
                                         examples=memory_examples(warm) if warm is not None else None))
        out: list[Suggestion] = []
        try:
            for proposer in proposers:
                for s in proposer.start(ctx):
                    try:
                        space.enqueue(scratch, s.model, s.config, s.source)
                    except SpaceError as e:
                        log.info("dropped a %s config: %s", s.source, e)
                        continue
                    out.append(s)
        finally:
            for proposer in proposers:
                proposer.finish(ctx)
        return out


def _memory(memory: Memory | bool | None) -> Memory | None:
    if memory is None or memory is False:
        return None
    if memory is True:
        return Memory()
    if isinstance(memory, Memory):
        return memory
    raise TypeError(f"memory= takes a Memory, True or None, not {type(memory).__name__}")


def _study_distributions(study: optuna.Study) -> dict[str, BaseDistribution]:
    dists: dict[str, BaseDistribution] = {}
    for t in study.get_trials(deepcopy=False):
        dists.update(t.distributions)
    return dists


def start_configs(model: str | ModelCard, data: Any = None, *, target: str | None = None,
                  dataset_card: DatasetCard | None = None, task_type: str | None = None, metric: str | None = None,
                  memory: Memory | bool | None = True, llm: LLM | str | None = None, n: int = 5,
                  params: Mapping[str, str] | None = None,
                  distributions: Mapping[str, BaseDistribution] | None = None, study_name: str = "warm-start",
                  exclude_datasets: Iterable[str] = ()) -> list[tuple[dict[str, Any], Suggestion]]:
    """The configs hyperpilot would start `model` with on `data` (the card default, up to
    `n` memory configs, an LLM's initial design when `llm` is given), each in your
    parameter names (`params` / matching by name) and `distributions` (default: the
    card's), with the `Suggestion` it came from; without repeats. What `warm_start` enqueues
    and `integrations.ray_tune.points_to_evaluate` returns."""
    setup = _Setup(model, data, target, dataset_card, task_type, metric, params,
                   needs_data=memory not in (None, False) or llm is not None)
    dists = dict(distributions or setup.map.default_distributions())
    mapping = setup.map.check(dists)
    out: list[tuple[dict[str, Any], Suggestion]] = []
    for s in setup.suggestions(study_name, _memory(memory), llm, n, exclude_datasets):
        user, notes = to_user(s.config, mapping, dists)
        for note in notes:
            log.warning("a %s config leaves out %s", s.source, note)
        if user and all(user != seen for seen, _ in out):
            out.append((user, s))
    return out


def warm_start(study: optuna.Study, model: str | ModelCard, data: Any = None, *, target: str | None = None,
               dataset_card: DatasetCard | None = None, task_type: str | None = None, metric: str | None = None,
               memory: Memory | bool | None = True, llm: LLM | str | None = None, n: int = 5,
               params: Mapping[str, str] | None = None,
               distributions: Mapping[str, BaseDistribution] | None = None,
               exclude_datasets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Enqueue into your `study` the configs hyperpilot would start `model` with on `data`
    (the card default, up to `n` memory configs, an LLM's proposals when `llm` is given), in
    your parameter names (`params` / matching by name) and distributions (`distributions`;
    default: the ones the study's trials used, else the card's). Returns the params enqueued,
    in order. `memory=None` and `llm=None` need no data: the card default alone.
    `exclude_datasets` keeps those datasets' past studies out (leave-one-out evaluation)."""
    configs = start_configs(model, data, target=target, dataset_card=dataset_card, task_type=task_type, metric=metric,
                            memory=memory, llm=llm, n=n, params=params,
                            distributions=distributions or _study_distributions(study) or None,
                            study_name=study.study_name, exclude_datasets=exclude_datasets)
    for user, s in configs:
        study.enqueue_trial(user, user_attrs={"source": s.source, **({"rationale": s.rationale[:300]} if s.rationale else {})},
                            skip_if_exists=True)
    return [user for user, _ in configs]


# ---------------------------------------------------------------------------- the sampler
class HyperpilotSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler with hyperpilot's start: the card default first, then memory (and,
    with `llm`, LLM) configs, then `inner` (default `TPESampler(seed=seed)`); every finished
    trial is written into `memory` (default: the memory under HYPERPILOT_HOME; None: none).

    `model` is a model card (name or `ModelCard`); `data` (a path, `sklearn:NAME`, a
    DataFrame with `target`, or `(X, y)`) or `dataset_card` describes the data, which the
    memory and the LLM need. `params` maps your parameter names to the card's (see the
    module docstring). A trial you enqueued yourself runs as you enqueued it. `record=False`
    reads the memory without writing to it; `exclude_datasets` keeps those datasets' past
    studies out of the warm start (leave-one-out evaluation)."""

    def __init__(self, model: str | ModelCard, data: Any = None, *, target: str | None = None,
                 dataset_card: DatasetCard | None = None, task_type: str | None = None, metric: str | None = None,
                 memory: Memory | bool | None = True, llm: LLM | str | None = None, n: int = 5,
                 params: Mapping[str, str] | None = None, inner: optuna.samplers.BaseSampler | None = None,
                 seed: int | None = None, record: bool = True, exclude_datasets: Iterable[str] = ()) -> None:
        self._setup = _Setup(model, data, target, dataset_card, task_type, metric, params,
                             needs_data=memory not in (None, False) or llm is not None)
        self.card = self._setup.card
        self.inner = inner if inner is not None else optuna.samplers.TPESampler(seed=seed)
        self.memory = _memory(memory)
        self.llm = llm
        self.n = n
        self._warm: list[Suggestion] | None = None
        self._assigned: dict[int, Suggestion] = {}  # trial number -> the warm config it runs
        self._lock = threading.Lock()
        self.exclude_datasets = tuple(exclude_datasets)
        self._recording = record and self.memory is not None and self._setup.task is not None
        self._entry: StudyEntry | None = None  # this study's record in the memory, once a trial is written

    # -- Optuna's lifecycle ------------------------------------------------------------
    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            if self._warm is None:
                self._warm = self._setup.suggestions(study.study_name, self.memory, self.llm, self.n,
                                                     self.exclude_datasets)
            if self._warm and "fixed_params" not in trial.system_attrs:
                used = {t.user_attrs.get(WARM_ATTR) for t in study.get_trials(deepcopy=False)}
                used.update(_tag(s) for s in self._assigned.values())
                while self._warm:
                    s = self._warm.pop(0)
                    if _tag(s) not in used:
                        self._assigned[trial.number] = s
                        storage = study._storage  # noqa: SLF001 - how Optuna's own samplers tag a trial
                        storage.set_trial_user_attr(trial._trial_id, "source", s.source)  # noqa: SLF001
                        storage.set_trial_user_attr(trial._trial_id, WARM_ATTR, _tag(s))  # noqa: SLF001
                        break
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial.number in self._assigned:
            return {}
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial.number in self._assigned:
            return {}
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        warm = self._assigned.get(trial.number)
        card_name = self._setup.map.card_name(param_name)
        if warm is not None and card_name is not None and card_name in warm.config:
            try:
                return fit_value(warm.config[card_name], param_distribution)
            except CannotMap as e:
                log.warning("a %s config leaves out %s (card %s): %s", warm.source, param_name, card_name, e)
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)
        warm = self._assigned.pop(trial.number, None)
        if self._recording:
            self._record(study, trial, state, values, warm)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    # -- the memory ---------------------------------------------------------------------
    def _record(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None,
                warm: Suggestion | None) -> None:
        """Write the finished trial into the memory now (this process), or into its journal
        while another process holds the memory; any other memory problem is one warning and
        the sampler stops recording."""
        assert self.memory is not None and self._setup.task is not None and self._setup.dataset_card is not None
        if len(study.directions) > 1:
            log.warning("the memory keeps single-objective studies only; this study's trials are not recorded")
            self._recording = False
            return
        config = {c: v for u, v in trial.params.items() if (c := self._setup.map.card_name(u)) is not None}
        if not config:
            return
        task, card = self._setup.task, self._setup.dataset_card
        first = self._entry is None
        if self._entry is None:
            direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
            self._entry = StudyEntry(
                id=f"{study.study_name}/{self.card.name}", dataset=card.name, task_type=str(task.task_type),
                model=self.card.name, family=self.card.family, metric=str(task.metric), direction=direction,
                card_text=study_text(card, str(task.task_type), str(task.metric)), meta_features=dict(card.meta_features))
        done = state == TrialState.COMPLETE and values is not None
        entry = TrialEntry(study_id=self._entry.id, number=trial.number, model=self.card.name, config=config,
                           score=float(values[0]) if done and values else None,
                           status="complete" if done else "pruned" if state == TrialState.PRUNED else "failed",
                           source=warm.source if warm is not None else str(trial.user_attrs.get("source", "bo")))
        try:
            try:
                with self.memory.held(wait=0.5):
                    if first:
                        self.memory.add_studies([self._entry])  # a placeholder summary; refresh() recomputes it
                    self.memory.add_trials([entry])
                    self.memory.refresh(self._entry.id)
            except MemoryBusy:
                self.memory.append_journal([self._entry, entry])  # the next holder merges and re-ranks it
        except HyperpilotError as e:
            log.warning("memory unavailable, trials are no longer recorded: %s", str(e).splitlines()[0])
            self._recording = False


def _tag(s: Suggestion) -> str:
    return json.dumps({"source": s.source, "config": s.config}, sort_keys=True, default=str)


__all__ = ["HyperpilotSampler", "ParamMap", "fit_value", "start_configs", "to_user", "warm_start"]
