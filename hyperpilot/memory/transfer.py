"""Memory as a transfer prior: a zero-shot portfolio, then a similarity-weighted TPE.

A *source* is one similar past task — a (dataset, model, metric), every stored study of it
pooled — with all its trials mapped into the new task's model space and its scores
normalised (1 = its best, 0 = its median or worse; a failed trial 0).

1. `portfolio`: the first trials after the card default: the sources' own best configs,
   most similar source first. A greedy coverage portfolio as in Auto-sklearn 2.0 and TabRepo
   (repeatedly the config that most raises Σ_sources similarity × the best normalised score
   reached there) was built and measured first: with sparse histories, where a config a
   source never ran is scored by its nearest trials (`Source.predict`), it picked configs
   predicted fair everywhere, and its first 5 trials on the fast suite were worse than the
   sources' measured bests (docs/benchmarks.md, Memory).
2. `TransferTPE`: the trials after the portfolio. A Parzen-ratio model (TPE) over every
   task's trials at once, each task split into its good (top quarter) and bad trials and
   weighted: the sources by similarity × agreement, the new study by how many own trials
   it has (meta-learned TPE, Watanabe et al. 2022, in its simplest form). As own trials
   arrive their weight n/(n + N0) takes over from the sources'.
3. Never worse than no memory when the neighbours are unrelated: a source whose similarity
   is below `MIN_SIMILARITY`, or a regression for a classification task (or the reverse), is
   not used; once the study has `AGREE_AFTER` own results, a
   source whose predictions rank them the wrong way round (Kendall's tau ≤ 0) gets weight 0;
   with no source left the model proposes nothing, and the study's own BO goes on alone.

Everything here is deterministic for a given memory, study and seed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperpilot.memory.records import TrialEntry
from hyperpilot.memory.similarity import config_key, map_config
from hyperpilot.space import CategoricalParam, SearchSpace

MIN_SIMILARITY = 0.6  # below this mixed similarity a past task is no source: classification vs regression scored 0.52-0.56 on the fast pack, classification vs classification 0.66-0.79
AGREE_AFTER = 4  # own results before a source's agreement is checked
N0 = 5.0  # the new study's weight is n / (n + N0): at 5 own trials it holds half the model
GAMMA = 0.25  # the good share of each task's trials
BANDWIDTH = 0.12  # Parzen kernel width on the unit cube
CAT_KEEP = 0.8  # a categorical kernel's mass on the observed choice
N_CANDIDATES = 96


def related(task_type: str, other: str) -> bool:
    """Whether a past task of type `other` may be a source for one of `task_type`: a
    regression and a classification never are (their scores say nothing of each other);
    an unknown type ("") is no objection."""
    kinds = {t: "regression" if t == "regression" else "classification" for t in (task_type, other) if t}
    return len(set(kinds.values())) <= 1


class Encoder:
    """Configs of a space as points of the unit cube (log scale where the param is log);
    categoricals as choice indices, compared by equality."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.params = list(space.params)
        self.is_cat = np.array([isinstance(p, CategoricalParam) for p in self.params], dtype=bool)

    def encode(self, config: dict[str, Any]) -> np.ndarray:
        out = np.zeros(len(self.params))
        for i, p in enumerate(self.params):
            v = config.get(p.name, p.default if p.default is not None else None)
            if isinstance(p, CategoricalParam):
                out[i] = p.choices.index(v) if v in p.choices else 0
                continue
            lo, hi, x = float(p.low), float(p.high), float(v if v is not None else p.low)  # type: ignore[union-attr]
            if p.log:  # type: ignore[union-attr]
                lo, hi, x = math.log(lo), math.log(hi), math.log(max(x, float(p.low)))  # type: ignore[union-attr]
            out[i] = 0.5 if hi <= lo else min(1.0, max(0.0, (x - lo) / (hi - lo)))
        return out

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for i, p in enumerate(self.params):
            if isinstance(p, CategoricalParam):
                config[p.name] = p.choices[int(x[i])]
                continue
            lo, hi = float(p.low), float(p.high)  # type: ignore[union-attr]
            if p.log:  # type: ignore[union-attr]
                config[p.name] = math.exp(math.log(lo) + float(x[i]) * (math.log(hi) - math.log(lo)))
            else:
                config[p.name] = lo + float(x[i]) * (hi - lo)
        return self.space.validate(config)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances from the rows of `a` to the point `b` (numeric: Euclidean; each
        categorical that differs: 1)."""
        num = ~self.is_cat
        d2 = ((a[:, num] - b[num]) ** 2).sum(axis=1) + (a[:, self.is_cat] != b[self.is_cat]).sum(axis=1)
        return np.sqrt(d2)


@dataclass
class Source:
    """One similar past task, its trials as points of the new model's space."""

    name: str
    similarity: float
    X: np.ndarray
    scores: np.ndarray  # normalised, 1 = best
    configs: list[dict[str, Any]]

    def predict(self, enc: Encoder, x: np.ndarray, k: int = 3) -> float:
        """This task's normalised score at `x`: exact where it ran `x`, else the
        inverse-distance mean of its `k` nearest trials."""
        d = enc.distance(self.X, x)
        if d.min() < 1e-9:
            return float(self.scores[d < 1e-9].mean())
        idx = np.argsort(d, kind="stable")[:k]
        w = 1.0 / d[idx]
        return float((w * self.scores[idx]).sum() / w.sum())

    def good(self) -> np.ndarray:
        return _top(self.scores, GAMMA)


def make_source(name: str, similarity: float, trials: list[TrialEntry], direction: str, space: SearchSpace,
                enc: Encoder) -> Source | None:
    """A source from a past task's trials (several studies of one task may be pooled), or
    None when fewer than 3 of them map into `space`."""
    sign = 1.0 if direction == "maximize" else -1.0
    rows: list[tuple[dict[str, Any], float | None]] = []
    for t in sorted(trials, key=lambda t: (t.study_id, t.number)):
        mapped = map_config(t.config, space)
        if mapped is None:
            continue
        ok = t.status == "complete" and t.score is not None and math.isfinite(t.score)
        rows.append((mapped, sign * float(t.score) if ok else None))  # type: ignore[arg-type]
    values = np.array([v for _, v in rows if v is not None])
    if len(rows) < 3 or len(values) < 2:
        return None
    best, median = float(values.max()), float(np.median(values))
    span = best - median if best > median else 1.0
    scores = np.array([0.0 if v is None else min(1.0, max(0.0, (v - median) / span)) for _, v in rows])
    return Source(name, similarity, np.array([enc.encode(c) for c, _ in rows]), scores, [c for c, _ in rows])


def portfolio(sources: list[Source], n: int, start: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """Up to `n` configs: each source's own best config, the most similar source first,
    none twice and none in `start` (e.g. the card default). See the module docstring for
    why not a greedy coverage portfolio."""
    taken = {config_key(c) for c in start}
    chosen: list[dict[str, Any]] = []
    for s in sorted(sources, key=lambda s: -s.similarity):  # stable: retrieval order among equals
        best = s.configs[int(np.argmax(s.scores))]  # the first of equal bests, in trial order
        if len(chosen) < n and config_key(best) not in taken:
            taken.add(config_key(best))
            chosen.append(best)
    return chosen


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a of two score vectors (0 for fewer than 2 points)."""
    n = len(a)
    if n < 2:
        return 0.0
    s = 0.0
    for i in range(n):
        s += float(np.sum(np.sign(a[i] - a[i + 1:]) * np.sign(b[i] - b[i + 1:])))
    return s / (n * (n - 1) / 2)


class TransferTPE:
    """The model after the portfolio (see the module docstring): `propose(own, seed)` ranks
    candidate configs by the weighted Parzen ratio l(x)/g(x), best first; [] when no
    source agrees with the study's own results."""

    def __init__(self, sources: list[Source], enc: Encoder) -> None:
        self.sources = sources
        self.enc = enc

    def weights(self, own_X: np.ndarray, own_y: np.ndarray) -> np.ndarray:
        """Each source's weight: its similarity × its agreement with the own results."""
        w = np.array([s.similarity for s in self.sources])
        if len(own_y) >= AGREE_AFTER:
            for i, s in enumerate(self.sources):
                pred = np.array([s.predict(self.enc, x) for x in own_X])
                w[i] *= max(0.0, kendall_tau(pred, own_y))
        return w

    def propose(self, own_X: np.ndarray, own_y: np.ndarray, seed: int) -> list[dict[str, Any]]:
        """Candidates, best first; `own_y` in maximise sign (failed trials left out)."""
        w = self.weights(own_X, own_y)
        if w.sum() <= 0:
            return []
        n = len(own_y)
        own_share = n / (n + N0)
        tasks: list[tuple[float, np.ndarray, np.ndarray]] = []  # (weight, good points, bad points)
        for wi, s in zip(w, self.sources, strict=True):
            if wi > 0:
                good = s.good()
                tasks.append(((1 - own_share) * wi / w.sum(), s.X[good], s.X[~good]))
        if n >= 2:
            good = _top(own_y, GAMMA)
            tasks.append((own_share, own_X[good], own_X[~good]))
        rng = np.random.default_rng(seed)
        cands = self._sample(tasks, rng)
        ratio = np.log(self._density(cands, tasks, 0) + 1e-12) - np.log(self._density(cands, tasks, 1) + 1e-3)
        order = np.argsort(-ratio, kind="stable")
        return [self.enc.decode(cands[i]) for i in order]

    def _sample(self, tasks: list[tuple[float, np.ndarray, np.ndarray]], rng: np.random.Generator) -> np.ndarray:
        """Draws from l(x): a task by weight, one of its good points, a kernel step."""
        p = np.array([t[0] for t in tasks])
        p = p / p.sum()
        out = np.zeros((N_CANDIDATES, len(self.enc.params)))
        cat = self.enc.is_cat
        for j in range(N_CANDIDATES):
            good = tasks[int(rng.choice(len(tasks), p=p))][1]
            x = good[int(rng.integers(len(good)))].copy()
            x[~cat] = np.clip(x[~cat] + rng.normal(0.0, BANDWIDTH, int((~cat).sum())), 0.0, 1.0)
            for i in np.flatnonzero(cat):
                if rng.random() > CAT_KEEP:
                    x[i] = rng.integers(len(self.enc.params[i].choices))  # type: ignore[union-attr]
            out[j] = x
        return out

    def _density(self, X: np.ndarray, tasks: list[tuple[float, np.ndarray, np.ndarray]], which: int) -> np.ndarray:
        """The weighted kernel density of the tasks' good (`which`=0) or bad (1) points at `X`."""
        total = np.zeros(len(X))
        cat = self.enc.is_cat
        for t in tasks:
            pts = t[2] if which else t[1]
            if len(pts) == 0:
                continue
            dens = np.zeros(len(X))
            for x in pts:
                d2 = ((X[:, ~cat] - x[~cat]) ** 2).sum(axis=1)
                same = (X[:, cat] == x[cat])
                k_cat = np.where(same, CAT_KEEP, 1 - CAT_KEEP).prod(axis=1) if cat.any() else 1.0
                dens += np.exp(-0.5 * d2 / BANDWIDTH**2) * k_cat
            total += t[0] * dens / len(pts)
        return total


def _top(values: np.ndarray, gamma: float) -> np.ndarray:
    """A mask of the best ceil(gamma·n) values (at least one; ties by position)."""
    n_good = max(1, math.ceil(gamma * len(values)))
    mask = np.zeros(len(values), dtype=bool)
    mask[np.argsort(-values, kind="stable")[:n_good]] = True
    return mask
