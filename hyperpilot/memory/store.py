"""`Memory`: the trial memory, a chromadb `PersistentClient` under `HYPERPILOT_HOME/memory`.

Two collections: `hp_studies` (one record per study and model, embedded by its dataset
card text) and `hp_trials` (one record per finished trial). Embeddings are computed here,
by a local model (`embed.MiniLMEmbedder`); chromadb's own embedding function (which would
download a model) is never used, and its telemetry is off.

Only one process may write a memory: two writers corrupt a chromadb store without any
error (FACTS.md). The first write takes an exclusive lock on `writer.lock` in the store's
folder, held until `close()` or the end of the process; a second process that tries to
write gets a `MemoryStoreError` (reading stays possible). Trials that run in worker
processes are reported back to the coordinating process, which alone writes.

Leave-one-out: `similar(..., exclude_datasets={"sklearn:wine"})` never returns a study of
that dataset, so an evaluation on wine cannot be warmed by wine's own trials."""

from __future__ import annotations

import fcntl
import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hyperpilot.cards.model import ModelCard
from hyperpilot.errors import MemoryStoreError
from hyperpilot.memory.embed import Embedder, MiniLMEmbedder, offline_env
from hyperpilot.memory.records import StudyEntry, TrialEntry, dumps, summarise, with_ranks
from hyperpilot.memory.similarity import Mix, meta_similarity, transfer_share

STUDIES, TRIALS = "hp_studies", "hp_trials"
_TRIAL_DIM = 4  # trials are found by metadata, not by vector; a small vector keeps them cheap
_BATCH = 4000
_LOCKS: dict[str, int] = {}  # store path -> fd holding this process's writer lock


@dataclass(frozen=True)
class Query:
    """What a new task looks like to the memory."""

    text: str
    meta_features: dict[str, float]
    task_type: str = ""


@dataclass(frozen=True)
class Neighbour:
    """A past study found for a new task, with its scores and the new model it serves."""

    study: StudyEntry
    score: float
    text_sim: float
    meta_sim: float
    model_sim: float
    target_model: str


class Memory:
    """The trial memory at `path` (default `HYPERPILOT_HOME/memory`); opens on first use."""

    def __init__(self, path: str | Path | None = None, *, embedder: Embedder | None = None) -> None:
        self._path = Path(path).expanduser() if path is not None else None
        self.embedder: Embedder = embedder or MiniLMEmbedder()
        self._client: Any = None
        self._studies: Any = None
        self._trials: Any = None
        self._vectors: dict[str, list[float]] = {}

    @property
    def path(self) -> Path:
        if self._path is None:
            from hyperpilot import studies

            return studies.home() / "memory"
        return self._path

    def exists(self) -> bool:
        return (self.path / "chroma.sqlite3").exists()

    # ------------------------------------------------------------------ opening
    def open(self, create: bool = True) -> Memory:
        """Open (or create) the store; raises `MemoryStoreError` with one clear line."""
        if self._client is not None:
            return self
        path = self.path
        if not create and not self.exists():
            raise MemoryStoreError(f"there is no memory at {path} yet; a solve or `hyperpilot memory import` makes one")
        offline_env()
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as e:
            raise MemoryStoreError("chromadb is not installed; `pip install chromadb==1.5.9` enables the memory") from e
        try:
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
            space = {"hnsw:space": "cosine"}
            self._studies = client.get_or_create_collection(STUDIES, embedding_function=None, metadata=space)
            self._trials = client.get_or_create_collection(TRIALS, embedding_function=None, metadata=space)
            self._studies.count()
            self._trials.count()
        except Exception as e:  # noqa: BLE001 - whatever chromadb raises, the user needs one line
            self._studies = self._trials = None
            raise MemoryStoreError(
                f"the memory at {path} cannot be opened ({type(e).__name__}: {_first_line(e)}); "
                "move the folder away to start an empty one"
            ) from e
        self._client, self._path = client, path  # pinned: HYPERPILOT_HOME may change later
        return self

    def close(self) -> None:
        """Give up the writer lock (the store stays readable by this object)."""
        fd = _LOCKS.pop(str(self.path.resolve()), None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _writable(self) -> None:
        self.open()
        key = str(self.path.resolve())
        if key in _LOCKS:
            return
        lock = self.path / "writer.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise MemoryStoreError(
                f"another process (pid {holder}) is writing the memory at {self.path}; only one process may "
                "write it (two writers corrupt it): wait for it, or pass --no-memory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _LOCKS[key] = fd

    # ------------------------------------------------------------------ writing
    def embed(self, text: str) -> list[float]:
        """The (cached) embedding of a card text."""
        if text not in self._vectors:
            self._vectors[text] = [float(x) for x in self.embedder.embed([text])[0]]
        return self._vectors[text]

    def add_studies(self, entries: list[StudyEntry]) -> None:
        """Insert or replace study records (by id)."""
        if not entries:
            return
        self._writable()
        missing = list(dict.fromkeys(e.card_text for e in entries if e.card_text not in self._vectors))
        if missing:
            for text, vec in zip(missing, self.embedder.embed(missing), strict=True):
                self._vectors[text] = [float(x) for x in vec]
        for i in range(0, len(entries), _BATCH):  # chromadb refuses batches above ~5,000
            part = entries[i:i + _BATCH]
            self._call(self._studies.upsert, ids=[e.id for e in part],
                       embeddings=[self._vectors[e.card_text] for e in part],
                       documents=[e.model_dump_json() for e in part], metadatas=[_study_meta(e) for e in part])

    def add_study(self, entry: StudyEntry) -> None:
        self.add_studies([entry])

    def add_trials(self, entries: list[TrialEntry]) -> None:
        """Insert or replace trial records (by study id and number)."""
        if not entries:
            return
        self._writable()
        for i in range(0, len(entries), _BATCH):
            part = entries[i:i + _BATCH]
            self._call(self._trials.upsert, ids=[t.id for t in part],
                       embeddings=[_trial_vector(t) for t in part], metadatas=[_trial_meta(t) for t in part])

    def refresh(self, study_id: str) -> StudyEntry:
        """Recompute the ranks of a study's trials and its summary (best config, top
        configs, trial count) from the trials stored; returns the new summary."""
        study = self.get_study(study_id)
        trials = with_ranks(self.trials(study_id), study.direction)
        self.add_trials(trials)
        summary = summarise(study, trials)
        self.add_study(summary)
        return summary

    def forget(self, study_id: str) -> int:
        """Delete a study record (or every model's record of an Optuna study name) and its
        trials; returns how many study records went."""
        self.open(create=False)
        ids = [s.id for s in self.studies() if s.id == study_id or s.id.startswith(f"{study_id}/")]
        if not ids:
            raise MemoryStoreError(f"no study '{study_id}' in the memory; `hyperpilot memory list` shows them")
        self._writable()
        self._call(self._trials.delete, where={"study_id": {"$in": ids}})
        self._call(self._studies.delete, ids=ids)
        return len(ids)

    # ------------------------------------------------------------------ reading
    def count(self) -> tuple[int, int]:
        """(study records, trial records); (0, 0) for a memory that does not exist yet."""
        if self._client is None and not self.exists():
            return 0, 0
        self.open()
        return int(self._call(self._studies.count)), int(self._call(self._trials.count))

    def get_study(self, study_id: str) -> StudyEntry:
        self.open(create=False)
        got = self._call(self._studies.get, ids=[study_id], include=["documents"])
        if not got["ids"]:
            raise MemoryStoreError(f"no study '{study_id}' in the memory; `hyperpilot memory list` shows them")
        return _study_from(got["documents"][0])

    def studies(self, where: dict[str, Any] | None = None) -> list[StudyEntry]:
        """Every study record (matching a chromadb `where` filter), oldest first."""
        if self._client is None and not self.exists():
            return []
        self.open()
        got = self._call(self._studies.get, where=where, include=["documents"])
        entries = [_study_from(d) for d in got["documents"]]
        return sorted(entries, key=lambda s: s.created)

    def trials(self, study_id: str) -> list[TrialEntry]:
        """The trials of one study record, by number."""
        if self._client is None and not self.exists():
            return []
        self.open()
        got = self._call(self._trials.get, where={"study_id": study_id}, include=["metadatas"])
        return sorted((TrialEntry.model_validate_json(m["json"]) for m in got["metadatas"]), key=lambda t: t.number)

    def search(self, text: str, n: int = 10) -> list[tuple[StudyEntry, float]]:
        """The `n` studies whose card text is closest to `text` (cosine similarity)."""
        n_studies, _ = self.count()
        if n_studies == 0:
            return []
        got = self._call(self._studies.query, query_embeddings=[self.embed(text)], n_results=min(n, n_studies),
                         include=["documents", "distances"])
        return [(_study_from(d), 1.0 - float(dist)) for d, dist in zip(got["documents"][0], got["distances"][0], strict=True)]

    def similar(
        self, query: Query, cards: list[ModelCard], k: int = 3, *, mix: Mix | None = None,
        exclude_datasets: Iterable[str] = (), exclude_ids: Iterable[str] = (), n_candidates: int = 64,
    ) -> list[Neighbour]:
        """The `k` past studies most like `query` whose configs carry over to one of
        `cards`, best first, at most one per (dataset, model): embedding similarity among
        the `n_candidates` nearest texts, re-scored with meta-features and model (`Mix`)."""
        mix = mix or Mix()
        if k <= 0 or (self._client is None and not self.exists()):
            return []
        self.open()
        n_studies = int(self._call(self._studies.count))
        if n_studies == 0:
            return []
        exclude_ids = set(exclude_ids)
        excluded = sorted(set(exclude_datasets))
        got = self._call(self._studies.query, query_embeddings=[self.embed(query.text)],
                         n_results=min(n_candidates, n_studies), include=["metadatas", "distances"],
                         where={"dataset": {"$nin": excluded}} if excluded else None)
        # score from the small metadata; parse only the winners' full records
        best: dict[tuple[str, str], tuple[float, float, str, float, float, float, str]] = {}
        for sid, meta, dist in zip(got["ids"][0], got["metadatas"][0], got["distances"][0], strict=True):
            params = [p for p in str(meta.get("params", "")).split(",") if p]
            if sid in exclude_ids or not params:
                continue
            shares = [(transfer_share(str(meta["model"]), str(meta["family"]), params, c), c.name) for c in cards]
            model_sim, target = max(shares) if shares else (0.0, "")
            if model_sim <= 0:
                continue
            text_sim = 1.0 - float(dist)
            meta_sim = meta_similarity(query.meta_features, json.loads(str(meta.get("meta", "{}"))))
            score = mix.score(text_sim, meta_sim, model_sim)
            signed = float("-inf")
            if "best_score" in meta:
                signed = float(meta["best_score"]) * (-1.0 if meta.get("direction") == "minimize" else 1.0)
            key = (str(meta["dataset"]), str(meta["model"]))
            if key not in best or (score, signed) > best[key][:2]:
                best[key] = (score, signed, sid, text_sim, meta_sim, model_sim, target)
        chosen = sorted(best.values(), key=lambda b: -b[0])[:k]
        if not chosen:
            return []
        docs = self._call(self._studies.get, ids=[c[2] for c in chosen], include=["documents"])
        entries = {i: _study_from(d) for i, d in zip(docs["ids"], docs["documents"], strict=True)}
        return [Neighbour(entries[sid], score, text_sim, meta_sim, model_sim, target)
                for score, _, sid, text_sim, meta_sim, model_sim, target in chosen if sid in entries]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemoryStoreError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken store is one clear line
            raise MemoryStoreError(
                f"the memory at {self.path} failed ({type(e).__name__}: {_first_line(e)}); "
                "it may be corrupt: move the folder away to start an empty one"
            ) from e


def _study_meta(e: StudyEntry) -> dict[str, Any]:
    """The small, filterable part of a study record (the whole record is its document)."""
    meta: dict[str, Any] = {
        "dataset": e.dataset, "task_type": e.task_type, "model": e.model, "family": e.family, "metric": e.metric,
        "direction": e.direction, "origin": e.origin, "n_trials": e.n_trials, "created": e.created,
        "params": ",".join(sorted(e.best_config or {})), "meta": dumps(e.meta_features),
    }
    if e.best_score is not None:
        meta["best_score"] = e.best_score
    return meta


def _study_from(document: str | None) -> StudyEntry:
    try:
        return StudyEntry.model_validate_json(document or "{}")
    except ValueError as e:
        raise MemoryStoreError(f"a study record in the memory is damaged ({_first_line(e)}); "
                               "`hyperpilot memory forget ID` removes it") from e


def _trial_meta(t: TrialEntry) -> dict[str, Any]:
    meta: dict[str, Any] = {"study_id": t.study_id, "number": t.number, "model": t.model, "status": t.status,
                            "source": t.source, "json": dumps(t.model_dump())}
    if t.rank is not None:
        meta["rank"] = t.rank
    return meta


def _trial_vector(t: TrialEntry) -> list[float]:
    """A small, spread-out vector per trial (rank and a hash of its id), so the index
    never sees many identical points."""
    h = zlib.crc32(t.id.encode()) / 2**32
    r = 0.5 if t.rank is None else t.rank
    v = np.array([r + 1e-3, 1.0 - r + 1e-3, h + 1e-3, 1.0 - h + 1e-3])
    return [float(x) for x in v / np.linalg.norm(v)]


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""
