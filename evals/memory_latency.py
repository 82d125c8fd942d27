"""Memory retrieval latency and the cost of adding a trial, at 1k, 10k and 100k stored trials.

    nice .venv/bin/python -m evals.memory_latency --sizes 1000,10000,100000

Synthetic studies of 50 trials each (so 20, 200 and 2,000 studies) with varied card
texts, embedded by the real MiniLM, in a real chromadb store in a temp folder.
- `similar()`: what a solve's start does: embed the query card, chromadb top-64 by cosine,
  re-score with meta-features and model; p50/p95 over `--queries` different queries,
  with the query embedding precomputed (store only) and including it (end to end).
- add a trial: what `MemoryProposer.observe` does per finished trial: upsert the trial, and
  the study's summary when the trial is a new best (or every 10th trial)."""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from evals.spaces import bench_card
from hyperpilot.memory import Memory, Query, StudyEntry, TrialEntry
from hyperpilot.memory.records import summarise

WORDS = ("age income churn price rooms sensor pixel amplitude tenure contract region colour dose gene "
         "heart pressure glucose wind speed temperature clicks revenue defects lines").split()
MODELS = ["random_forest", "svm", "knn", "hist_gradient_boosting", "decision_tree", "logistic_regression"]


def fake_study(i: int, rng: random.Random) -> tuple[StudyEntry, list[TrialEntry]]:
    model = MODELS[i % len(MODELS)]
    card = bench_card(model)
    rows, feats = rng.randint(100, 100_000), rng.randint(2, 300)
    cols = ", ".join(f"{rng.choice(WORDS)}_{j} (numeric)" for j in range(min(feats, 12)))
    kind = rng.choice(["binary", "multiclass", "regression"])
    text = (f"Dataset: data{i}.csv — {kind} task, target 'y'\nRows: {rows}; features: {feats}\nColumns: {cols}\n"
            f"Task: {kind}; metric {'rmse' if kind == 'regression' else 'accuracy'}")
    meta = {"log_rows": float(np.log10(rows)), "log_features": float(np.log10(feats)), "features_per_row": feats / rows,
            "numeric_share": rng.random(), "missing_fraction": rng.random() * 0.2}
    sid = f"synthetic-{i}/{model}"
    study = StudyEntry(id=sid, dataset=f"data{i}.csv", task_type=kind, model=model, family=card.family,
                       metric="accuracy", direction="maximize", card_text=text, meta_features=meta)
    nrng = np.random.default_rng(i)
    trials = [TrialEntry(study_id=sid, number=n, model=model, config=card.space.sample(nrng), score=rng.random(),
                         source="bo") for n in range(50)]
    return summarise(study, trials), trials


def pct(xs: list[float]) -> str:
    return f"p50 {1000 * np.percentile(xs, 50):.1f} ms, p95 {1000 * np.percentile(xs, 95):.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args(argv)
    rng = random.Random(0)
    root = Path(tempfile.mkdtemp(prefix="hp-mem-lat-"))
    memory = Memory(root / "memory")
    memory.open()
    stored, n_studies = 0, 0
    cards = [bench_card("random_forest"), bench_card("svm")]
    print("| stored trials | studies | similar(), store only | similar(), with query embedding | add a trial | add a trial + summary (new best) | disk |")
    print("|---|---|---|---|---|---|---|")
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            t0 = time.perf_counter()
            while stored < size:
                batch = [fake_study(n_studies + j, rng) for j in range(min(200, (size - stored) // 50))]
                memory.add_studies([s for s, _ in batch])
                memory.add_trials([t for _, ts in batch for t in ts])
                stored += sum(len(ts) for _, ts in batch)
                n_studies += len(batch)
            fill = time.perf_counter() - t0
            queries = [fake_study(10**7 + q, rng)[0] for q in range(args.queries)]
            memory.embedder.embed([q.card_text for q in queries[:2]])  # warm the model
            store_only, end_to_end = [], []
            for q in queries:
                memory._vectors.pop(q.card_text, None)  # noqa: SLF001 - measure the embedding too
                t = time.perf_counter()
                memory.similar(Query(q.card_text, q.meta_features), cards, k=3)
                end_to_end.append(time.perf_counter() - t)
                t = time.perf_counter()
                memory.similar(Query(q.card_text, q.meta_features), cards, k=3)
                store_only.append(time.perf_counter() - t)
            study, trials = fake_study(10**8, rng)
            memory.add_study(study)
            adds, adds_best = [], []
            for n in range(30):
                t = time.perf_counter()
                memory.add_trials([trials[n].model_copy(update={"number": 1000 + n})])
                adds.append(time.perf_counter() - t)
                memory.add_study(summarise(study, trials[: n + 1]))  # on a new best (and every 10th trial)
                adds_best.append(time.perf_counter() - t)
            disk = sum(f.stat().st_size for f in memory.path.rglob("*") if f.is_file()) / 2**20
            print(f"| {stored:,} | {n_studies:,} | {pct(store_only)} | {pct(end_to_end)} | {pct(adds)} | {pct(adds_best)} | {disk:.0f} MiB "
                  f"(filled in {fill:.0f} s) |", flush=True)
    finally:
        memory.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
