"""`Memory`: the trial memory, a chromadb `PersistentClient` under `HYPERPILOT_HOME/memory`.

Two collections: `hp_studies` (one record per study and model, embedded by its dataset
card text) and `hp_trials` (one record per finished trial). Embeddings are computed here,
by a local model (`embed.MiniLMEmbedder`); chromadb's own embedding function (which would
download a model) is never used, and its telemetry is off.

Only one process at a time may open a memory: two writers corrupt a chromadb store
without any error (FACTS.md), and in chromadb 1.5 even a read rewrites the index files.
So every use of the store happens under an exclusive lock on `writer.lock` in its folder:
`open()` takes it and keeps it (and the store open) until `close()` or the end of the
process; any other call takes it for itself and gives it back, the store closed, when it
returns. A process that finds the lock held (and waits `wait` seconds for it in vain) gets
`MemoryBusy`, a `MemoryStoreError` naming the holder's pid. A solve that meets a busy
memory journals its records instead (`journal.py`; `append_journal`), and whoever holds
the lock next merges the journal into chromadb: when it takes the lock, before every call
while it holds it, and once more when it gives it back. Trials that run in worker
processes are reported back to the coordinating process, which alone writes.

Leave-one-out: `similar(..., exclude_datasets={"sklearn:wine"})` never returns a study of
that dataset, so an evaluation on wine cannot be warmed by wine's own trials."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperpilot.cards.model import ModelCard
from hyperpilot.errors import MemoryStoreError
from hyperpilot.memory.embed import Embedder, MiniLMEmbedder, offline_env
from hyperpilot.memory.journal import Journal
from hyperpilot.memory.records import StudyEntry, TrialEntry, dumps, summarise, with_ranks
from hyperpilot.memory.similarity import Mix, meta_similarity, transfer_share

STUDIES, TRIALS = "hp_studies", "hp_trials"
_TRIAL_DIM = 4  # trials are found by metadata, not by vector; a small vector keeps them cheap
_BATCH = 4000
log = logging.getLogger("hyperpilot.memory")
_GUARD = threading.RLock()  # this process's holds: one at a time changes them


class MemoryBusy(MemoryStoreError):
    """The memory is in use by another process (`pid`); only one may open it at a time."""

    def __init__(self, message: str, pid: str) -> None:
        super().__init__(message)
        self.pid = pid


@dataclass
class _Hold:
    """This process's hold on one store: the writer lock and the open chromadb client,
    shared by every `Memory` object of the same folder."""

    fd: int
    client: Any
    studies: Any
    trials: Any
    users: int = 0  # Memory objects that called open() and not yet close()
    depth: int = 0  # calls in progress
    merging: bool = False
    merge_failed: bool = False
    pid: int = field(default_factory=os.getpid)  # a forked child inherits the dict, not the hold


_HELD: dict[str, _Hold] = {}  # resolved store path -> this process's hold


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
    """The trial memory at `path` (default `HYPERPILOT_HOME/memory`); opens on first use.

    `wait`: how many seconds a call waits for another process to give the memory back
    before it raises `MemoryBusy` (0: at once)."""

    def __init__(self, path: str | Path | None = None, *, embedder: Embedder | None = None, wait: float = 0.0) -> None:
        self._path = Path(path).expanduser() if path is not None else None
        self.embedder: Embedder = embedder or MiniLMEmbedder()
        self.wait = wait
        self._opened = False  # this object called open() and not yet close()
        self._vectors: dict[str, list[float]] = {}

    @property
    def path(self) -> Path:
        if self._path is None:
            from hyperpilot import studies

            return studies.home() / "memory"
        return self._path

    @property
    def journal(self) -> Journal:
        return Journal(self.path)

    def exists(self) -> bool:
        """Whether there is a store here, or records in its journal waiting to make one."""
        return (self.path / "chroma.sqlite3").exists() or self.journal.pending()

    @property
    def _studies(self) -> Any:
        return self._held().studies

    @property
    def _trials(self) -> Any:
        return self._held().trials

    # ------------------------------------------------------------------ opening
    def open(self, create: bool = True, *, wait: float | None = None) -> Memory:
        """Open (or create) the store and keep it, and the writer lock, until `close()`;
        merges the journal. Raises `MemoryBusy` when another process has the memory (after
        `wait` seconds, default `self.wait`), `MemoryStoreError` (one line) for any other problem."""
        with self._session(create, wait) as hold:
            if not self._opened:
                hold.users += 1
                self._opened = True
        return self

    def try_open(self, wait: float = 0.0) -> bool:
        """`open()`, or False when another process has the memory (other problems raise)."""
        try:
            self.open(wait=wait)
        except MemoryBusy:
            return False
        return True

    def close(self) -> None:
        """Give the memory back: when no other call of this process uses it, merge the
        journal once more, close the store and release the writer lock."""
        with _GUARD:
            if not self._opened:
                return
            self._opened = False
            hold = _hold_of(self._key())
            if hold is not None:
                hold.users -= 1
                self._release_if_unused(hold)

    def holder(self) -> str:
        """The pid written by the process that holds (or last held) the writer lock, or '?'."""
        try:
            return (self.path / "writer.lock").read_text(errors="replace").strip() or "?"
        except OSError:
            return "?"

    def append_journal(self, records: Iterable[StudyEntry | TrialEntry]) -> int:
        """Leave records for the next holder of the memory to merge (see `journal.py`)."""
        try:
            return self.journal.append(records)
        except OSError as e:
            raise MemoryStoreError(f"cannot write the memory's journal in {self.journal.folder}: {e.strerror or e}") from e

    def _key(self) -> str:
        return str(self.path.resolve())

    def _is_held(self) -> bool:
        return _hold_of(self._key()) is not None

    def _held(self) -> _Hold:
        hold = _hold_of(self._key())
        if hold is None:
            raise MemoryStoreError(f"the memory at {self.path} is not open in this process")
        return hold

    @contextlib.contextmanager
    def held(self, create: bool = True, wait: float | None = None) -> Iterator[Memory]:
        """`with memory.held(): ...`: the store stays open (and locked) for the block, then
        is given back unless an `open()` keeps it; for several calls in a row."""
        with self._session(create, wait):
            yield self

    @contextlib.contextmanager
    def _session(self, create: bool = True, wait: float | None = None) -> Iterator[_Hold]:
        """This process's hold on the store for the length of one call: taken (lock, then
        a fresh client) when there is none, the journal merged when it has records, and
        given back afterwards unless an `open()` keeps it."""
        with _GUARD:
            hold = _hold_of(self._key())
            if hold is None:
                hold = self._take(create, self.wait if wait is None else wait)
            hold.depth += 1
            try:
                if not hold.merging and not hold.merge_failed and self.journal.pending():
                    self._merge(hold)
                yield hold
            finally:
                hold.depth -= 1
                self._release_if_unused(hold)

    def _take(self, create: bool, wait: float) -> _Hold:
        path = self.path
        if not create and not self.exists():
            raise MemoryStoreError(f"there is no memory at {path} yet; a solve or `hyperpilot memory import` makes one")
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise MemoryStoreError(f"cannot use the memory folder {path}: {e.strerror or e}") from e
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise MemoryBusy(
                        f"another process (pid {holder}) is writing the memory at {path}; only one process at a "
                        "time may open it (two corrupt it): try again when it has finished", holder) from None
                time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            client, studies, trials = _open_store(path)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._path = path  # pinned: HYPERPILOT_HOME may change later
        hold = _HELD[self._key()] = _Hold(fd, client, studies, trials)
        return hold

    def _release_if_unused(self, hold: _Hold) -> None:
        if hold.users > 0 or hold.depth > 0:
            return
        hold.depth += 1
        try:
            if not hold.merging and not hold.merge_failed and self.journal.pending():
                self._merge(hold)  # what arrived while we held it
        finally:
            hold.depth -= 1
            _HELD.pop(self._key(), None)
            try:
                hold.client.close()  # stops chromadb's system: the next holder loads what is on disk
            except Exception as e:  # noqa: BLE001 - closing must not fail a call that worked
                log.debug("closing the memory's client: %s", e)
            fcntl.flock(hold.fd, fcntl.LOCK_UN)
            os.close(hold.fd)

    def _merge(self, hold: _Hold) -> None:
        """Merge the journal into the store (the caller holds it; see `journal.py`)."""
        hold.merging = True
        try:
            journal = self.journal
            files = journal.claim()
            if not files:
                return
            studies, trials, bad = journal.read(files)
            known = {s.id for s in studies}
            for sid in {t.study_id for t in trials} - known:
                if self._call(hold.studies.get, ids=[sid], include=[])["ids"]:
                    known.add(sid)
            orphans = [t for t in trials if t.study_id not in known]
            trials = [t for t in trials if t.study_id in known]
            self.add_studies(studies)
            self.add_trials(trials)
            for sid in sorted({s.id for s in studies} | {t.study_id for t in trials}):
                self.refresh(sid)  # ranks among all the study's trials, and its summary
            journal.done(files)
            log.info("memory: merged %d study and %d trial record(s) from the journal%s", len(studies), len(trials),
                     f" ({bad} unreadable line(s) and {len(orphans)} trial(s) of unknown studies skipped)"
                     if bad or orphans else "")
        except MemoryStoreError as e:
            hold.merge_failed = True  # the claimed files stay; this process does not try again
            log.warning("memory: cannot merge the journal in %s now: %s", self.journal.folder, e)
        except Exception as e:  # noqa: BLE001 - a journal problem must not fail the call that found it
            hold.merge_failed = True
            log.warning("memory: cannot merge the journal in %s now: %s: %s", self.journal.folder, type(e).__name__,
                        _first_line(e))
        finally:
            hold.merging = False

    def merge_journal(self) -> bool:
        """Merge the journal now, if this process can have the memory; whether it could."""
        if not self.journal.pending():
            return True
        try:
            with self._session(create=True):
                return True
        except MemoryBusy:
            return False

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
        missing = list(dict.fromkeys(e.card_text for e in entries if e.card_text not in self._vectors))
        if missing:
            for text, vec in zip(missing, self.embedder.embed(missing), strict=True):
                self._vectors[text] = [float(x) for x in vec]
        with self._session() as hold:
            for i in range(0, len(entries), _BATCH):  # chromadb refuses batches above ~5,000
                part = entries[i:i + _BATCH]
                self._call(hold.studies.upsert, ids=[e.id for e in part],
                           embeddings=[self._vectors[e.card_text] for e in part],
                           documents=[e.model_dump_json() for e in part], metadatas=[_study_meta(e) for e in part])

    def add_study(self, entry: StudyEntry) -> None:
        self.add_studies([entry])

    def add_trials(self, entries: list[TrialEntry]) -> None:
        """Insert or replace trial records (by study id and number)."""
        if not entries:
            return
        with self._session() as hold:
            for i in range(0, len(entries), _BATCH):
                part = entries[i:i + _BATCH]
                self._call(hold.trials.upsert, ids=[t.id for t in part],
                           embeddings=[_trial_vector(t) for t in part], metadatas=[_trial_meta(t) for t in part])

    def refresh(self, study_id: str) -> StudyEntry:
        """Recompute the ranks of a study's trials and its summary (best config, top
        configs, trial count) from the trials stored; returns the new summary."""
        with self._session(create=False):
            study = self.get_study(study_id)
            trials = with_ranks(self.trials(study_id), study.direction)
            self.add_trials(trials)
            summary = summarise(study, trials)
            self.add_study(summary)
        return summary

    def forget(self, study_id: str) -> int:
        """Delete a study record (or every model's record of an Optuna study name) and its
        trials; returns how many study records went."""
        with self._session(create=False) as hold:
            ids = [s.id for s in self.studies() if s.id == study_id or s.id.startswith(f"{study_id}/")]
            if not ids:
                raise MemoryStoreError(f"no study '{study_id}' in the memory; `hyperpilot memory list` shows them")
            self._call(hold.trials.delete, where={"study_id": {"$in": ids}})
            self._call(hold.studies.delete, ids=ids)
        return len(ids)

    # ------------------------------------------------------------------ reading
    def count(self) -> tuple[int, int]:
        """(study records, trial records); (0, 0) for a memory that does not exist yet."""
        if not self._is_held() and not self.exists():
            return 0, 0
        with self._session() as hold:
            return int(self._call(hold.studies.count)), int(self._call(hold.trials.count))

    def get_study(self, study_id: str) -> StudyEntry:
        with self._session(create=False) as hold:
            got = self._call(hold.studies.get, ids=[study_id], include=["documents"])
        if not got["ids"]:
            raise MemoryStoreError(f"no study '{study_id}' in the memory; `hyperpilot memory list` shows them")
        return _study_from(got["documents"][0])

    def studies(self, where: dict[str, Any] | None = None) -> list[StudyEntry]:
        """Every study record (matching a chromadb `where` filter), oldest first."""
        if not self._is_held() and not self.exists():
            return []
        with self._session() as hold:
            got = self._call(hold.studies.get, where=where, include=["documents"])
        entries = [_study_from(d) for d in got["documents"]]
        return sorted(entries, key=lambda s: s.created)

    def trials(self, study_id: str) -> list[TrialEntry]:
        """The trials of one study record, by number."""
        if not self._is_held() and not self.exists():
            return []
        with self._session() as hold:
            got = self._call(hold.trials.get, where={"study_id": study_id}, include=["metadatas"])
        return sorted((TrialEntry.model_validate_json(m["json"]) for m in got["metadatas"]), key=lambda t: t.number)

    def search(self, text: str, n: int = 10) -> list[tuple[StudyEntry, float]]:
        """The `n` studies whose card text is closest to `text` (cosine similarity)."""
        if not self._is_held() and not self.exists():
            return []
        vector = self.embed(text)
        with self._session() as hold:
            n_studies = int(self._call(hold.studies.count))
            if n_studies == 0:
                return []
            got = self._call(hold.studies.query, query_embeddings=[vector], n_results=min(n, n_studies),
                             include=["documents", "distances"])
        return [(_study_from(d), 1.0 - float(dist)) for d, dist in zip(got["documents"][0], got["distances"][0], strict=True)]

    def similar(
        self, query: Query, cards: list[ModelCard], k: int = 3, *, mix: Mix | None = None,
        exclude_datasets: Iterable[str] = (), exclude_ids: Iterable[str] = (), per_dataset: bool = True,
    ) -> list[Neighbour]:
        """The `k` past studies most like `query` whose configs carry over to one of
        `cards`, best first, at most one per (dataset, model) unless `per_dataset=False`:
        cosine similarity of the card texts, mixed with meta-features and model (`Mix`).

        Exact and reproducible: every candidate's embedding is read and ranked here in
        numpy (no approximate index), scores are rounded to 9 digits, and ties go to the
        better best score, then the smaller study id, so the same memory gives the same
        neighbours in any process, whatever order its records were added in."""
        mix = mix or Mix()
        if k <= 0 or (not self._is_held() and not self.exists()):
            return []
        vector = np.asarray(self.embed(query.text), dtype=np.float64)
        with self._session() as hold:
            excluded = sorted(set(exclude_datasets))
            got = self._call(hold.studies.get, where={"dataset": {"$nin": excluded}} if excluded else None,
                             include=["metadatas", "embeddings"])
            ranked = _rank(query, vector, cards, mix, set(exclude_ids), got)
            if per_dataset:
                first: dict[tuple[str, str], tuple[Any, ...]] = {}
                for r in ranked:
                    first.setdefault(r[-1], r)
                ranked = list(first.values())  # dicts keep insertion order: still best first
            chosen = ranked[:k]
            if not chosen:
                return []
            docs = self._call(hold.studies.get, ids=[c[2] for c in chosen], include=["documents"])
        entries = {i: _study_from(d) for i, d in zip(docs["ids"], docs["documents"], strict=True)}
        return [Neighbour(entries[sid], -neg, text_sim, meta_sim, model_sim, target)
                for neg, _, sid, text_sim, meta_sim, model_sim, target, _ in chosen if sid in entries]

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


def _rank(query: Query, vector: np.ndarray, cards: list[ModelCard], mix: Mix, exclude_ids: set[str],
          got: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every candidate study that transfers to one of `cards`, as (−score, −signed best
    score, id, text sim, meta sim, model sim, target model, (dataset, model)), best first."""
    out = []
    ids, metas, embeddings = got["ids"], got["metadatas"], got["embeddings"]
    if not ids:
        return []
    matrix = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
    cosines = matrix @ vector / np.maximum(norms, 1e-12)
    for sid, meta, cos in zip(ids, metas, cosines, strict=True):
        params = [p for p in str(meta.get("params", "")).split(",") if p]
        if sid in exclude_ids or not params:
            continue
        shares = [(transfer_share(str(meta["model"]), str(meta["family"]), params, c), c.name) for c in cards]
        model_sim, target = max(shares) if shares else (0.0, "")
        if model_sim <= 0:
            continue
        text_sim = round(float(cos), 9)
        meta_sim = round(meta_similarity(query.meta_features, json.loads(str(meta.get("meta", "{}")))), 9)
        score = round(mix.score(text_sim, meta_sim, model_sim), 9)
        signed = float("-inf")
        if "best_score" in meta:
            signed = float(meta["best_score"]) * (-1.0 if meta.get("direction") == "minimize" else 1.0)
        out.append((-score, -signed, str(sid), text_sim, meta_sim, model_sim, target,
                    (str(meta["dataset"]), str(meta["model"]))))
    out.sort(key=lambda r: r[:3])
    return out


def _hold_of(key: str) -> _Hold | None:
    hold = _HELD.get(key)
    if hold is not None and hold.pid != os.getpid():
        del _HELD[key]  # inherited through fork: the parent's, not ours
        return None
    return hold


def _open_store(path: Path) -> tuple[Any, Any, Any]:
    """A fresh chromadb client on `path` and its two collections (created if missing);
    the caller holds the writer lock. Raises `MemoryStoreError` with one clear line."""
    offline_env()
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError as e:
        raise MemoryStoreError("chromadb is not installed; `pip install chromadb==1.5.9` enables the memory") from e
    client: Any = None
    try:
        client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        space = {"hnsw:space": "cosine"}
        studies = client.get_or_create_collection(STUDIES, embedding_function=None, metadata=space)
        trials = client.get_or_create_collection(TRIALS, embedding_function=None, metadata=space)
        studies.count()
        trials.count()
    except Exception as e:  # noqa: BLE001 - whatever chromadb raises, the user needs one line
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        raise MemoryStoreError(
            f"the memory at {path} cannot be opened ({type(e).__name__}: {_first_line(e)}); "
            "move the folder away to start an empty one"
        ) from e
    return client, studies, trials


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
