"""Memory as a transfer prior: exact, reproducible retrieval; the zero-shot portfolio; the
similarity-weighted TPE; and no harm from an unrelated memory (real chromadb, real solves)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from hyperpilot import Assistant, Task
from hyperpilot.cards import get_model_card
from hyperpilot.core import Outcome, StudyContext, StudyLoop, StudySpace, TrialHandle
from hyperpilot.memory import Memory, MemoryProposer, Query, StudyEntry, TrialEntry
from hyperpilot.memory.embed import HashEmbedder
from hyperpilot.memory.transfer import AGREE_AFTER, Encoder, Source, TransferTPE, kendall_tau, portfolio
from hyperpilot.sandbox import InProcessExecutor

pytest.importorskip("chromadb")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SVM = get_model_card("svm")
META = {"log_rows": 2.2, "log_features": 1.1, "n_classes": 3.0, "class_entropy": 0.99, "numeric_share": 1.0}
TEXT = "Dataset: flowers — multiclass task, target 'species'\nColumns: petal length, petal width\nTask: multiclass; metric accuracy"


def _pack() -> list[tuple[StudyEntry, list[TrialEntry]]]:
    """40 studies on 20 datasets with the same card (so every similarity ties) and equal
    best scores in pairs: only a stable tie-break makes retrieval reproducible."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(40):
        sid = f"study-{i:02d}/svm"
        trials = []
        for n in range(12):
            config = SVM.space.validate({"C": float(10 ** rng.uniform(-2, 3)), "gamma": float(10 ** rng.uniform(-4, 0))})
            score = round(1.0 - abs(math.log10(config["C"]) - 1.0) / 10 - abs(math.log10(config["gamma"]) + 2.0) / 10, 2)
            trials.append(TrialEntry(study_id=sid, number=n, model="svm", config=config, score=score))
        best = max(trials, key=lambda t: t.score or 0.0)
        out.append((StudyEntry(id=sid, dataset=f"data-{i % 20:02d}", task_type="multiclass", model="svm", family=SVM.family,
                               metric="accuracy", direction="maximize", card_text=TEXT, meta_features=META,
                               best_config=best.config, best_score=round(0.9 + (i // 2) * 0.001, 3), n_trials=12),
                    trials))
    return out


def _fill(path: Path, reverse: bool) -> Memory:
    memory = Memory(path, embedder=HashEmbedder())
    pack = _pack()[::-1] if reverse else _pack()
    with memory.held():
        for study, trials in pack:
            memory.add_studies([study])
            memory.add_trials(trials[::-1] if reverse else trials)
    return memory


def _objective(handle: TrialHandle) -> Outcome:
    c = handle.config
    return Outcome(1.0 - abs(math.log10(c["C"]) - 1.2) / 10 - abs(math.log10(c["gamma"]) + 2.3) / 10, 0.0)


def proposals(path: str) -> dict[str, Any]:
    """Neighbours and the first 10 trials (source, stage, config) of a study warm-started
    from the memory at `path` (also run in a fresh process below)."""
    memory = Memory(path, embedder=HashEmbedder())
    task = Task(data="sklearn:iris", models=["svm"], metric="accuracy", n_trials=10, seed=3).resolved("multiclass")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3))
    ctx = StudyContext(task, study, StudySpace([SVM]))
    proposer = MemoryProposer(memory, write=False, query=Query(TEXT, META), exclude_datasets=["data-00"])
    StudyLoop(ctx, _objective, [proposer]).run(10)
    trials = study.get_trials()
    return {"neighbours": [(n.study.id, n.score) for n in proposer.neighbours],
            "trials": [(t.user_attrs.get("source", "bo"), t.user_attrs.get("memory_stage"), t.params) for t in trials]}


def test_retrieval_and_proposals_are_identical_across_insertion_orders_and_processes(tmp_path: Path) -> None:
    a = proposals(str(_fill(tmp_path / "a", reverse=False).path))
    b = proposals(str(_fill(tmp_path / "b", reverse=True).path))
    assert a == b
    ids = [sid for sid, _ in a["neighbours"]]
    assert len(ids) == 8 and len({sid.split("-")[1] for sid in ids}) == 8  # one per dataset
    # all tie on similarity: the better best score wins, then the smaller id
    assert ids[:4] == ["study-38/svm", "study-39/svm", "study-36/svm", "study-37/svm"]
    stages = [stage for _, stage, _ in a["trials"]]
    assert "portfolio" in stages and "transfer" in stages
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_memory_transfer import proposals
        print(json.dumps(proposals({str(tmp_path / "b")!r})))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(a))


def _source(name: str, configs: list[dict[str, Any]], scores: list[float], enc: Encoder, sim: float = 1.0) -> Source:
    return Source(name, sim, np.array([enc.encode(c) for c in configs]), np.array(scores), configs)


def test_portfolio_is_the_sources_bests_most_similar_first() -> None:
    enc = Encoder(SVM.space)
    x1, x2, x3 = ({"C": c, "gamma": g, "tol": 1e-3} for c, g in ((1000.0, 1e-4), (0.01, 0.5), (1.0, 1e-2)))
    a = _source("a", [x1, x2, x3], [1.0, 0.0, 0.6], enc, sim=0.7)
    b = _source("b", [x1, x2, x3], [0.0, 1.0, 0.6], enc, sim=0.9)
    same = _source("same", [x3, x2], [0.0, 1.0], enc, sim=0.8)  # its best is b's
    assert portfolio([a, b, same], 1) == [x2]  # the most similar source's best (x3, fair on both, never wins)
    assert portfolio([a, b, same], 3) == [x2, x1]  # none twice
    assert portfolio([a, b], 2, start=[x2]) == [x1]  # the default is already b's best
    assert portfolio([a, b], 3, start=[x1, x2]) == [] and portfolio([], 3) == []


def test_transfer_tpe_follows_agreeing_sources_and_drops_disagreeing_ones() -> None:
    enc = Encoder(SVM.space)
    rng = np.random.default_rng(1)
    configs = [SVM.space.validate({"C": float(10 ** rng.uniform(-2, 3)), "gamma": float(10 ** rng.uniform(-4, 0))})
               for _ in range(40)]
    truth = np.array([-abs(math.log10(c["C"]) - 2) for c in configs])  # best at C = 100
    good = _source("good", configs, list((truth - truth.min()) / np.ptp(truth)), enc)
    bad = _source("bad", configs, list(1 - (truth - truth.min()) / np.ptp(truth)), enc)
    own = configs[:AGREE_AFTER + 2]
    own_X, own_y = np.array([enc.encode(c) for c in own]), truth[:AGREE_AFTER + 2]
    assert kendall_tau(own_y, own_y) == 1.0 and kendall_tau(own_y, -own_y) == -1.0
    model = TransferTPE([good, bad], enc)
    assert list(model.weights(own_X[:AGREE_AFTER - 1], own_y[:AGREE_AFTER - 1])) == [1.0, 1.0]  # too few to judge
    w = model.weights(own_X, own_y)
    assert w[0] > 0 and w[1] == 0.0
    first = model.propose(own_X, own_y, seed=0)[0]
    assert abs(math.log10(first["C"]) - 2) < 1.0 < float(np.median(-truth))  # near the agreeing source's good region
    assert model.propose(own_X, own_y, seed=0) == model.propose(own_X, own_y, seed=0)  # seeded
    assert TransferTPE([bad], enc).propose(own_X, own_y, seed=0) == []  # nobody agrees: BO alone


def _solve(data: Any, memory: Any, seed: int, n: int, target: str | None = None, model: str = "svm") -> Any:
    task = Task(data=data, target=target, models=[model], metric="accuracy", n_trials=n, cv_folds=2, seed=seed)
    return Assistant(executor=InProcessExecutor(), llm="none", memory=memory).solve(task)


def test_unrelated_memory_is_not_worse_than_no_memory(tmp_path: Path) -> None:
    """A memory of an unrelated task (svm on a regression table; logistic regression, whose
    configs do not carry over to svm, on a similar table) is no source: a study with it
    runs exactly as without it."""
    from sklearn.datasets import load_diabetes

    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    diabetes = load_diabetes(as_frame=True).frame
    Assistant(executor=InProcessExecutor(), llm="none", memory=memory).solve(
        Task(data=diabetes, target="target", models=["svm"], n_trials=6, cv_folds=2))
    _solve("sklearn:iris", memory, 0, 6, model="logistic_regression")
    assert memory.count()[0] == 2
    for seed in range(3):
        proposer = MemoryProposer(memory, write=False)
        with_memory = _solve("sklearn:breast_cancer", proposer, seed, 8)
        without = _solve("sklearn:breast_cancer", None, seed, 8)
        assert proposer.neighbours == [] and "memory" not in set(with_memory.trials.source)
        assert with_memory.cv_score >= without.cv_score


def test_a_similar_but_uninformative_memory_loses_its_weight(tmp_path: Path) -> None:
    """svm studies of a table like the new one but with a shuffled target (nothing to learn):
    they pass the similarity bar, so the portfolio tries their configs (a bet like BO's random
    start); once the study has `AGREE_AFTER` results that the memory does not rank right,
    the transfer model stops proposing and BO goes on alone."""
    from sklearn.datasets import load_iris

    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    iris = load_iris(as_frame=True).frame
    iris["target"] = np.random.default_rng(0).permutation(iris["target"].to_numpy())
    _solve(iris, memory, 0, 12, target="target")
    for seed in range(2):
        proposer = MemoryProposer(memory, write=False)
        trials = _solve("sklearn:wine", proposer, seed, 16).trials.sort_values("number")
        sources = list(trials.source)
        assert proposer.neighbours and sources[0] == "default" and "memory" in sources[1:AGREE_AFTER]
        assert sources[AGREE_AFTER:] == ["bo"] * (16 - AGREE_AFTER)  # no transfer once its results disagree
