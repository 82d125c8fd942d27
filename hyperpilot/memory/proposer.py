"""`MemoryProposer`: the memory's seat in the solve loop.

- `start`: records the study (one entry per model, embedded once), stores trials that
  already finished (a resumed study), and — for a fresh study — finds the similar past
  tasks (`transfer.py`: exact retrieval, every trial of each) and returns a zero-shot
  portfolio, their own best configs (queued right after the card defaults, `source=memory`).
- `suggest`: after the portfolio, the transfer model (a similarity-weighted TPE over the
  past tasks' trials and this study's own) proposes, while it has a source that agrees
  with this study's results, in place of BO's random start (`samplers.startup_trials`:
  a third of the budget, 3–10 trials); then BO alone, its model fitted on own trials.
- `observe`: stores each finished trial at once (a crash loses nothing Optuna was told)
  and updates the study's summary when the trial is a new best (and every 10 trials).
- `finish`: recomputes the rank-normalised scores of the study's trials and its summary,
  and gives up the memory's writer lock.

The proposer holds the memory (its writer lock) from `start` to `finish`. When another
process has it (a second solve at the same time), the study runs without warm start (one
warning line) and its records go to the memory's journal instead; as soon as the memory is
free (tried at each trial, and for a few seconds at the end) the proposer takes it, which
merges the journal, and writes directly again. A journal left behind is merged by the
next process that opens the memory.

Any other memory problem (corrupt store, missing package) is one warning line; the
proposer then switches itself off and the solve goes on without memory."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import optuna

from hyperpilot.core.loop import retried
from hyperpilot.core.proposer import Proposer, StudyContext, config_key
from hyperpilot.core.types import Suggestion, TrialRecord
from hyperpilot.errors import HyperpilotError
from hyperpilot.memory.records import StudyEntry, TrialEntry, rank_normalise, summarise
from hyperpilot.memory.retrieve import (
    MIX,
    K,
    MemoryExample,
    WarmStart,
    examples_of,
    in_context_examples,
    query_for,
    study_text,
    warm_configs,
)
from hyperpilot.memory.similarity import Mix
from hyperpilot.memory.store import Memory, Neighbour, Query
from hyperpilot.memory.transfer import MIN_SIMILARITY, Encoder, Source, TransferTPE, make_source, portfolio, related
from hyperpilot.samplers import startup_trials

log = logging.getLogger("hyperpilot.memory")
SOURCE = "memory"
SUMMARY_EVERY = 10  # the study's summary is rewritten on a new best and every 10 trials (finish: always)
START_WAIT = 1.0  # seconds start() waits for a memory in use by another process (then: journal)
FINISH_WAIT = 5.0  # seconds finish() waits for it, so that its journal is merged at once
N_SOURCES = 8  # similar past tasks the transfer prior learns from (one per dataset and model)


class MemoryProposer(Proposer):
    """Warm-starts a study from the memory and writes its trials to it.

    `k`: the portfolio's size with the card default (at most a quarter of the budget);
    `exclude_datasets`: datasets whose studies must not be used (leave-one-out
    evaluation); `write=False` reads the memory without adding to it; `query`: what the
    new task looks like, when the study has no dataset card (a benchmark's table);
    `transfer=False`: the portfolio only, BO afterwards."""

    name = "memory"

    def __init__(self, memory: Memory | None = None, k: int = K, mix: Mix = MIX, *,
                 exclude_datasets: Iterable[str] = (), write: bool = True, query: Query | None = None,
                 transfer: bool = True) -> None:
        self.memory = memory if memory is not None else Memory()  # opens on first use
        self.k = k
        self.mix = mix
        self.exclude_datasets = tuple(exclude_datasets)
        self.write = write
        self.query = query
        self.transfer = transfer
        self.neighbours: list[Neighbour] = []
        self.sources: dict[str, list[Source]] = {}  # target model -> the similar past tasks it learns from
        self._models: dict[str, tuple[Encoder, TransferTPE]] = {}
        self.warm: list[WarmStart] = []
        self._entries: dict[str, StudyEntry] = {}
        self._trials: dict[str, list[TrialEntry]] = {}
        self._off = False
        self.journaling = False  # the memory is in use by another process: records go to its journal

    def examples(self) -> list[MemoryExample]:
        """The studies this solve was warm-started from, as in-context examples for the
        LLM planner (empty before `start`, or when the memory had nothing similar)."""
        return examples_of(self.warm)

    def similar_examples(self, ctx: StudyContext) -> list[MemoryExample]:
        """The similar past studies as in-context examples for the LLM planner: the
        warm-start set, or (a resumed study has none) a fresh retrieval."""
        if self._off or self.journaling:
            return []
        return self.examples() or in_context_examples(
            ctx.task, ctx.dataset_card, self.memory, self.k, exclude_datasets=self.exclude_datasets,
            exclude_ids=[f"{ctx.task.study_name}/{m}" for m in ctx.space.models], mix=self.mix)

    # ------------------------------------------------------------------ hooks
    def start(self, ctx: StudyContext) -> list[Suggestion]:
        return self._guard(self._start, ctx) or []

    def suggest(self, ctx: StudyContext) -> Suggestion | None:
        return self._guard(self._suggest, ctx) if self._models else None

    def observe(self, ctx: StudyContext, record: TrialRecord) -> None:
        if self.write:
            self._guard(self._observe, ctx, record)

    def finish(self, ctx: StudyContext) -> None:
        if self.write:
            self._guard(self._finish, ctx)
        self.memory.close()

    # ------------------------------------------------------------------ work
    def _start(self, ctx: StudyContext) -> list[Suggestion]:
        memory, task = self.memory, ctx.task
        self.journaling = busy = not memory.try_open(wait=START_WAIT)
        if busy:
            log.warning("memory in use by another process (pid %s): no warm start for this solve%s", memory.holder(),
                        "; its trials go to the memory's journal and join the memory later" if self.write else "")
        ids = {m: f"{task.study_name}/{m}" for m in ctx.space.models}
        if self.write:
            text = study_text(ctx.dataset_card, str(task.task_type), str(task.metric))
            for model, card in ctx.space.cards.items():
                self._entries[model] = StudyEntry(
                    id=ids[model], dataset=ctx.dataset_card.name, task_type=str(task.task_type), model=model,
                    family=card.family, metric=str(task.metric), direction=task.direction, card_text=text,
                    meta_features=dict(ctx.dataset_card.meta_features),
                )
                self._trials[model] = []
            trials = ctx.study.get_trials(deepcopy=False)
            dead = retried(trials)
            for t in trials:  # a resumed study: store what already ran
                if t.number in dead:  # its process died; the retry (queued now) stands for it
                    continue
                entry = _from_frozen(t, ctx)
                if entry is not None:
                    self._trials[entry.model].append(entry)
            self._rank_trials()
            self._put([summarise(e, self._trials[m]) for m, e in self._entries.items()],
                      [t for ts in self._trials.values() for t in ts])
        if not ctx.fresh or busy or self.journaling:
            return []
        cards = list(ctx.space.cards.values())
        query = self.query or query_for(task, ctx.dataset_card)
        found = memory.similar(query, cards, max(self.k, N_SOURCES), mix=self.mix,
                               exclude_datasets=self.exclude_datasets, exclude_ids=ids.values())
        self.neighbours = [nb for nb in found if nb.score >= MIN_SIMILARITY and related(query.task_type, nb.study.task_type)]
        self.warm = warm_configs(self.neighbours[:self.k], cards, n=self.k)  # the planner's examples
        self.sources = self._sources(self.neighbours, ctx)
        n_portfolio = max(1, min(self.k - 1, (task.n_trials or 30) // 4))
        picks: list[Suggestion] = []
        for model, sources in self.sources.items():
            enc = Encoder(ctx.space.cards[model].space)
            if self.transfer:
                self._models[model] = (enc, TransferTPE(sources, enc))
            chosen = portfolio(sources, n_portfolio, start=[ctx.space.cards[model].default_config()])
            picks += [Suggestion(model, c, SOURCE, f"best config of one of {len(sources)} similar past task(s)",
                                 attrs={"memory_stage": "portfolio"}) for c in chosen]
        with_history = {(s.name, m) for m, ss in self.sources.items() for s in ss}
        bare = [nb for nb in self.neighbours  # a study remembered without its trials: its best configs, as they are
                if (f"{nb.study.dataset}/{nb.study.model}", nb.target_model) not in with_history]
        skip = [(m, c.default_config()) for m, c in ctx.space.cards.items()] + [(p.model, p.config) for p in picks]
        picks += [Suggestion(w.model, w.config, SOURCE, f"best config of similar study {w.neighbour.study.id} "
                             f"(similarity {w.neighbour.score:.2f})", attrs={"memory_study": w.neighbour.study.id})
                  for w in warm_configs(bare, cards, n=max(0, n_portfolio - len(picks)), skip=skip)]
        picks = picks[:n_portfolio]
        if picks or self._models:
            log.info("memory: %d portfolio config(s) and a transfer model from %d similar task(s): %s", len(picks),
                     sum(map(len, self.sources.values())), [n.study.id for n in self.neighbours])
        return picks

    def _sources(self, neighbours: list[Neighbour], ctx: StudyContext) -> dict[str, list[Source]]:
        """Each neighbour as a transfer source for the model it serves: the trials of every
        stored study of its (dataset, model, metric), mapped into that model's space."""
        out: dict[str, list[Source]] = {}
        with self.memory.held():
            for nb in neighbours:
                s = nb.study
                where = {"$and": [{"dataset": s.dataset}, {"model": s.model}, {"metric": s.metric}]}
                studies = sorted(self.memory.studies(where=where), key=lambda e: e.id)
                trials = [t for e in studies for t in self.memory.trials(e.id)]
                card = ctx.space.cards[nb.target_model]
                src = make_source(f"{s.dataset}/{s.model}", nb.score, trials, s.direction, card.space, Encoder(card.space))
                if src is not None:
                    out.setdefault(nb.target_model, []).append(src)
        return out

    def _suggest(self, ctx: StudyContext) -> Suggestion | None:
        """The transfer model's next config for the model with the best own result (or
        the one with most sources), or None (BO proposes)."""
        sign = 1.0 if ctx.study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        own: dict[str, list[tuple[dict[str, Any], float]]] = {m: [] for m in self._models}
        n_own = 0
        for t in ctx.study.get_trials(deepcopy=False):
            if t.state.is_finished():
                n_own += 1
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
                model, config = ctx.space.from_params(t.params)
                if model in own:
                    own[model].append((config, sign * float(t.value)))
        if n_own >= startup_trials(ctx.task.n_trials or 30):  # BO's model has its start: it takes over
            return None
        best = {m: max((v for _, v in obs), default=-float("inf")) for m, obs in own.items()}
        model = max(self._models, key=lambda m: (best[m], len(self.sources.get(m, [])), m))
        enc, tpe = self._models[model]
        obs = own[model]
        X = np.array([enc.encode(c) for c, _ in obs]).reshape(len(obs), len(enc.params))
        tried = ctx.tried()
        for config in tpe.propose(X, np.array([v for _, v in obs]), seed=ctx.task.seed * 7919 + n_own):
            if config_key(model, config) not in tried:
                return Suggestion(model, config, SOURCE, f"transfer TPE over {len(tpe.sources)} similar past task(s) "
                                  f"and {len(obs)} own result(s)", attrs={"memory_stage": "transfer"})
        return None

    def _observe(self, ctx: StudyContext, record: TrialRecord) -> None:
        if record.model not in self._entries:
            return
        trials = self._trials[record.model]
        entry = TrialEntry(
            study_id=self._entries[record.model].id, number=record.number, model=record.model, config=record.config,
            score=record.value, status="complete" if record.state == "COMPLETE" else "pruned" if record.state == "PRUNED" else "failed",
            source=record.source,
        )
        trials[:] = [t for t in trials if t.number != record.number] + [entry]
        ranks = rank_normalise([t.score for t in trials], ctx.task.direction)
        entry = entry.model_copy(update={"rank": ranks[-1]})  # provisional: finish() re-ranks all
        trials[-1] = entry
        summary = summarise(self._entries[record.model], trials)
        new_best = ranks[-1] == 1.0 or len(trials) % SUMMARY_EVERY == 0  # a new best, or now and then
        self._put([summary] if new_best else [], [entry])

    def _finish(self, ctx: StudyContext) -> None:
        if self.journaling:  # the final ranks and summaries, then a last try to merge them at once
            self._rank_trials()
            self.memory.append_journal([summarise(e, self._trials[m]) for m, e in self._entries.items()]
                                       + [t for ts in self._trials.values() for t in ts])
            if self.memory.try_open(wait=FINISH_WAIT):  # merges the journal, ours included
                self.journaling = False
            else:
                log.info("memory still in use by another process (pid %s): this study waits in the memory's "
                         "journal until that process, or the next one, merges it", self.memory.holder())
            return
        for entry in self._entries.values():
            self.memory.refresh(entry.id)

    def _rank_trials(self) -> None:
        for model, ts in self._trials.items():
            ranked = rank_normalise([t.score for t in ts], self._entries[model].direction)
            ts[:] = [t.model_copy(update={"rank": r}) for t, r in zip(ts, ranked, strict=False)]

    def _put(self, studies: list[StudyEntry], trials: list[TrialEntry]) -> None:
        """Write records to the memory, or to its journal while another process has it
        (taking the memory as soon as it is free: that merges the journal first)."""
        if self.journaling and self.memory.try_open():
            self.journaling = False
            log.info("memory free again: this solve writes it directly")
        if self.journaling:
            self.memory.append_journal([*studies, *trials])
            return
        self.memory.add_trials(trials)
        self.memory.add_studies(studies)

    def _guard(self, fn: Any, *args: Any) -> Any:
        if self._off:
            return None
        try:
            return fn(*args)
        except HyperpilotError as e:
            self._switch_off(str(e))
        except Exception as e:  # noqa: BLE001 - the memory must never stop a study
            self._switch_off(f"{type(e).__name__}: {e}")
        return None

    def _switch_off(self, why: str) -> None:
        self._off = True
        first = why.strip().splitlines()[0] if why.strip() else "unknown error"
        log.warning("memory unavailable, solving without memory: %s", first)


def _from_frozen(t: optuna.trial.FrozenTrial, ctx: StudyContext) -> TrialEntry | None:
    state = t.state
    if state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED):
        return None
    model = t.user_attrs.get("model") or t.params.get("model")
    if model not in ctx.space.cards:
        return None
    config = t.user_attrs.get("config") or ctx.space.from_params(t.params)[1]
    status = {"COMPLETE": "complete", "FAIL": "failed", "PRUNED": "pruned"}[state.name]
    return TrialEntry(study_id=f"{ctx.task.study_name}/{model}", number=t.number, model=str(model), config=config,
                      score=t.value if state == optuna.trial.TrialState.COMPLETE else None, status=status,  # type: ignore[arg-type]
                      source=str(t.user_attrs.get("source", "bo")))


def memory_proposer(memory: Memory | MemoryProposer | bool | None, others: list[Proposer]) -> MemoryProposer | None:
    """The proposer for `Assistant(memory=...)`: True (the default) for the memory under
    HYPERPILOT_HOME, a `Memory` or a configured `MemoryProposer`; None/False for none
    (also when `others` already holds a `MemoryProposer`)."""
    if memory is None or memory is False or any(isinstance(p, MemoryProposer) for p in others):
        return None
    if isinstance(memory, MemoryProposer):
        return memory
    if isinstance(memory, Memory):
        return MemoryProposer(memory)
    if memory is True:
        return MemoryProposer()
    raise TypeError(f"memory= takes a Memory, a MemoryProposer, True or None, not {type(memory).__name__}")
