"""The hybrid proposal policy, BO in control: `LLMProposer`.

- `start`: on a fresh study, after the card default, the LLM's initial design (k configs,
  zero-shot warm start from the model and dataset cards and memory examples). By default
  only for a model that proposes freely: the embedded 135M picker's zero-shot designs ranked
  far below BO's trials (docs/benchmarks.md), so for it `n_initial` defaults to 0.
- `suggest`: at `rate` of the remaining steps (spread evenly: a credit accumulator), the
  LLM picks the next trial among `n_candidates` configs that BO itself proposes (the
  study's own kind of sampler asked on a throwaway in-memory copy of the study, each one
  TPE's best of its own 24 draws by l(x)/g(x)), lettered A, B, …; the model answers one
  letter (`Planner.pick`, `LLM.choose`: the embedded model scores the letters by
  log-probability in one forward pass). So the LLM can only move the study among configs
  BO already rates well, never outside them. Every other step is BO's.
- Every failure (endpoint down, timeout, a prompt over the embedded model's token cap,
  backend exception) is counted and BO proposes instead; an unavailable endpoint gets one
  warning and a growing cool-down, and the study goes on. With the embedded model no clock
  takes part in a choice, so a run is the same on a loaded machine (only slower).
- `finish` stores the measured facts (Optuna's fANOVA importances, the best quarter's
  ranges) beside the accounting; no LLM writes free text about the study.
- Accounting (backend, model, calls, tokens, latency, answers valid/invalid, proposals
  used, and how LLM-sourced trials ranked against BO's) lives in the study's user
  attribute `llm`; `report.accounting(study)` reads it back for the CLI and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from hyperpilot import studies
from hyperpilot.agent.llm import LLM, resolve_llm
from hyperpilot.agent.llm.base import LLMTimeout
from hyperpilot.agent.planner import AnswerError, Example, Planner, Proposal, config_row, short_number
from hyperpilot.core.proposer import Proposer, StudyContext, config_key
from hyperpilot.core.types import Suggestion, TrialRecord
from hyperpilot.errors import HyperpilotError, LLMError
from hyperpilot.prompts import fmt_config, fmt_value

if TYPE_CHECKING:
    from hyperpilot.memory import MemoryProposer

log = logging.getLogger("hyperpilot.llm")
DEFAULT_RATE = 0.1  # share of BO steps the LLM replaces: best of 0.1/0.25/0.5 on fast (docs/benchmarks.md "The default rate, measured")
N_CANDIDATES = 4  # BO's candidates the LLM picks among
HISTORY = 3  # best trials shown to the LLM
ATTR = "llm"


class LLMProposer(Proposer):
    """The hybrid policy (see the module docstring). `summarise`: at the end, store the
    measured facts (`study_facts`) in the study's `llm` attribute."""

    name = "llm"

    def __init__(self, llm: LLM | str, *, rate: float = DEFAULT_RATE, n_initial: int | None = None,
                 n_candidates: int = N_CANDIDATES,
                 retries: int = 2, timeout: float = 30.0, summarise: bool = True,
                 examples: Callable[[StudyContext], list[Example]] | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise HyperpilotError(f"the LLM rate must be in [0, 1], got {rate}")
        if not 2 <= n_candidates <= 26:
            raise HyperpilotError(f"the LLM picks among 2 to 26 candidates, got n_candidates={n_candidates}")
        self.llm = llm
        self.rate = rate
        self.n_initial = n_initial
        self.n_candidates = n_candidates
        self.retries = retries
        self.timeout = timeout
        self.summarise = summarise
        self.examples = examples

    # -- Proposer hooks ---------------------------------------------------------------------
    def start(self, ctx: StudyContext) -> list[Suggestion]:
        llm = resolve_llm(self.llm)
        if llm is None:
            raise HyperpilotError("LLMProposer needs an LLM; use --llm none to run BO alone")
        self.planner = Planner(llm, retries=self.retries, timeout=self.timeout)
        self._credit, self._cooldown, self._failures = 0.0, 0, 0
        self._proposed, self._used, self._warning = 0, 0, ""
        self._examples = self.examples(ctx) if self.examples is not None else []
        n_initial = self.n_initial if self.n_initial is not None else (2 if llm.free_proposals else 0)
        design: list[Suggestion] = []
        if ctx.fresh and n_initial > 0:
            k = n_initial if ctx.task.n_trials is None else min(n_initial, max(0, ctx.task.n_trials - len(ctx.space.models)))
            if k:
                design = self._guarded(ctx, lambda: self._initial_design(ctx, k)) or []
        self._save(ctx)
        return design

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        self._credit += self.rate
        if self._credit < 1.0 - 1e-9:
            return None
        self._credit -= 1.0
        if self._cooldown > 0:
            self._cooldown -= 1
            return None
        suggestion = self._guarded(ctx, lambda: self._next(ctx))
        self._save(ctx)
        return suggestion  # type: ignore[no-any-return]

    def observe(self, ctx: StudyContext, record: TrialRecord) -> None:
        if record.source == "llm":
            self._used += 1
        self._save(ctx)

    def finish(self, ctx: StudyContext) -> None:
        if self.summarise:
            self._save_facts(ctx)

    # -- decisions ------------------------------------------------------------------------
    def _initial_design(self, ctx: StudyContext, k: int) -> list[Suggestion]:
        planned = [ctx.space.from_params(_params(t)) for t in ctx.study.trials if _params(t)]
        variables = {
            "task": ctx.task, "metric": ctx.task.metric, "direction": ctx.task.direction,
            "dataset_card": ctx.dataset_card.to_text(max_columns=6) if ctx.dataset_card is not None else "(no dataset card)",
            "examples": self._examples,
            "planned": [f"{m} {fmt_config(c)}" for m, c in planned],
        }
        return [self._suggestion(p) for p in self.planner.initial_design(ctx.space, variables, k, ctx.tried())]

    def _next(self, ctx: StudyContext) -> Suggestion | None:
        candidates = self._candidates(ctx, ctx.tried())
        if len(candidates) < 2:
            return None  # BO's candidates collapsed onto tried configs: nothing to choose, BO's step
        variables = {"metric": ctx.task.metric, "direction": ctx.task.direction, "history": history_lines(ctx),
                     "n_done": ctx.n_done, "columns": columns(ctx)}
        return self._suggestion(self.planner.pick(variables, candidates))

    def _candidates(self, ctx: StudyContext, tried: set[tuple[Any, ...]]) -> list[Proposal]:
        """BO's own candidates (seeded by the study's seed and size), untried, de-duplicated."""
        seed = ctx.task.seed * 7919 + len(ctx.study.trials) + 1
        out, seen = [], set(tried)
        for p in bo_candidates(ctx, self.n_candidates, seed):
            key = config_key(p.model, p.config)
            if key not in seen:
                seen.add(key)
                out.append(p)
        return out

    def _save_facts(self, ctx: StudyContext) -> None:
        """The measured facts of the study, saved beside the accounting (no LLM call)."""
        try:
            facts = study_facts(ctx)
        except (ValueError, HyperpilotError):
            return
        shares = ", ".join(f"{name} {share:.0%}" for name, share in facts["importances"]) or "too few trials"
        ctx.study.set_user_attr(ATTR, {**self._state(ctx), "facts": f"importance: {shares}; best quarter: "
                                       + "; ".join(facts["region"])})

    # -- plumbing -------------------------------------------------------------------------
    def _suggestion(self, p: Proposal) -> Suggestion:
        self._proposed += 1
        return Suggestion(p.model, p.config, "llm", p.rationale[:200], attrs={"llm_origin": p.origin})

    def _guarded(self, ctx: StudyContext, decide: Callable[[], Any], count: bool = True) -> Any:
        """Run one decision; any failure is counted, BO proposes instead, the study goes on."""
        try:
            result = decide()
        except LLMError as e:
            if count:
                self.planner.stats.fallbacks += 1
            if not isinstance(e, AnswerError):
                self._failures += 1
                self._cooldown = min(2 ** self._failures, 16)
                if not self._warning:
                    what = "too slow" if isinstance(e, LLMTimeout) else "unavailable"  # a slow model is not a missing one
                    self._warning = f"LLM {what}, BO proposes instead: {e}"
                    log.warning("hyperpilot: %s", self._warning)
            return None
        self._failures = 0
        return result

    def _state(self, ctx: StudyContext) -> dict[str, Any]:
        return dict(ctx.study.user_attrs.get(ATTR, {}))

    def _save(self, ctx: StudyContext) -> None:
        state = self._state(ctx)
        llm = self.planner.llm
        state.update({
            "backend": llm.backend, "model": llm.model, "rate": self.rate, "free_proposals": llm.free_proposals,
            "stats": self.planner.stats.to_dict(), "proposed": self._proposed, "used": self._used,
            "warning": self._warning,
        })
        ctx.study.set_user_attr(ATTR, state)


def bo_candidates(ctx: StudyContext, n: int, seed: int) -> list[Proposal]:
    """`n` configs from the study's own kind of sampler, asked on a throwaway in-memory copy
    of the finished trials (the real study is not touched)."""
    finished = ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    sampler = studies.make_sampler(ctx.task.model_copy(update={"seed": seed}), len(ctx.study.trials))
    copy = optuna.create_study(direction=ctx.study.direction, sampler=sampler)
    copy.add_trials(finished)
    out = []
    for _ in range(n):
        model, config = ctx.space.suggest(copy.ask())
        out.append(Proposal(model, config, "", "bo"))
    return out


def columns(ctx: StudyContext) -> list[str]:
    """The parameter names of a one-model study (its configs go to the LLM as rows of values);
    empty for several models (`model name=value`)."""
    return [p.name for p in next(iter(ctx.space.cards.values())).space.params] if len(ctx.space.models) == 1 else []


def history_lines(ctx: StudyContext, limit: int = HISTORY) -> list[str]:
    """The best finished trials, best first (LLAMBO-style): `.9712 | 12.3,.000422` in a
    one-model study (the values in the order of `columns`), else `.9712 | svm C=12.3 gamma=0.000422`."""
    done = ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    done = sorted(done, key=lambda t: t.value, reverse=ctx.task.direction == "maximize")  # type: ignore[arg-type, return-value]
    names = columns(ctx)
    return [f"{short_number(t.value, 4)} | {_describe(ctx, t, names)}" for t in done[:limit]] or ["(none yet)"]  # type: ignore[arg-type]


def _describe(ctx: StudyContext, t: optuna.trial.FrozenTrial, names: list[str]) -> str:
    model, config = ctx.space.from_params(t.params)
    return config_row(names, config) if names else f"{model} {fmt_config(config)}"


def _params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A trial's params; for a queued trial, the ones it was enqueued with."""
    return t.params or dict(t.system_attrs.get("fixed_params", {}))


def memory_examples(warm: MemoryProposer) -> Callable[[StudyContext], list[Example]]:
    """`LLMProposer(examples=...)` from a memory: its similar past studies as `Example`s."""
    def examples(ctx: StudyContext) -> list[Example]:
        return [Example(task=f"{e.dataset} ({e.metric}, {e.direction})", model=e.model, config=e.config, score=e.best_score)
                for e in warm.similar_examples(ctx)]

    return examples


def study_facts(ctx: StudyContext) -> dict[str, Any]:
    """The study's measured facts: best trial, Optuna's fANOVA importances, the best region."""
    done = ctx.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ValueError("no complete trial")
    best = ctx.study.best_trial
    model, config = ctx.space.from_params(best.params)
    same = [t for t in done if t.params.get("model") == model]
    maximize = ctx.task.direction == "maximize"
    top = sorted(same, key=lambda t: t.value, reverse=maximize)[: max(2, len(same) // 4)]  # type: ignore[arg-type, return-value]
    region = []
    for name in config:
        values = [t.params[f"{model}.{name}"] for t in top]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            region.append(f"{name}: {fmt_value(min(values))} to {fmt_value(max(values))}")
        else:
            region.append(f"{name}: {', '.join(sorted({fmt_value(v) for v in values}))}")
    return {
        "models": ", ".join(ctx.space.models), "metric": ctx.task.metric, "direction": ctx.task.direction,
        "n_trials": len(done), "best": f"{fmt_value(best.value)} with {model} {fmt_config(config)}",
        "importances": _importances(ctx, same, model), "region": region,
    }


def _importances(ctx: StudyContext, trials: list[optuna.trial.FrozenTrial], model: str) -> list[tuple[str, float]]:
    if len(trials) < 5:
        return []
    copy = optuna.create_study(direction=ctx.study.direction)
    copy.add_trials(trials)
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0)
        shares = optuna.importance.get_param_importances(copy, evaluator=evaluator)
    except (ValueError, RuntimeError):
        return []
    return [(k.removeprefix(f"{model}."), float(v)) for k, v in shares.items() if k != "model"][:6]
