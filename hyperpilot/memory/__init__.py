"""Trial memory over chromadb: past studies that warm-start new ones.

    Memory            the store (chromadb under HYPERPILOT_HOME/memory, local embeddings)
    MemoryProposer    warm-start trials (source=memory) + writes every trial as it finishes
    in_context_examples / format_examples / MemoryProposer.examples()   for the LLM planner
    import_jsonl / export_jsonl / write_pack   JSON Lines exports and memory packs
    Journal           where a solve leaves its records while another process has the memory

Importing this package is cheap: the names above are imported on first use (so that
`hyperpilot memory --help` loads nothing heavy), chromadb and the embedding model on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_PUBLIC = {
    "Journal": "journal", "ImportReport": "packs", "export_jsonl": "packs", "import_jsonl": "packs",
    "write_pack": "packs", "MemoryProposer": "proposer", "StudyEntry": "records", "TrialEntry": "records",
    "rank_normalise": "records", "MIX": "retrieve", "K": "retrieve", "MemoryExample": "retrieve",
    "format_examples": "retrieve", "in_context_examples": "retrieve", "query_for": "retrieve", "Mix": "similarity",
    "map_config": "similarity", "Memory": "store", "MemoryBusy": "store", "Neighbour": "store", "Query": "store",
}

if TYPE_CHECKING:
    from hyperpilot.memory.journal import Journal
    from hyperpilot.memory.packs import ImportReport, export_jsonl, import_jsonl, write_pack
    from hyperpilot.memory.proposer import MemoryProposer
    from hyperpilot.memory.records import StudyEntry, TrialEntry, rank_normalise
    from hyperpilot.memory.retrieve import MIX, K, MemoryExample, format_examples, in_context_examples, query_for
    from hyperpilot.memory.similarity import Mix, map_config
    from hyperpilot.memory.store import Memory, MemoryBusy, Neighbour, Query

__all__ = [
    "K", "MIX", "ImportReport", "Journal", "Memory", "MemoryBusy", "MemoryExample", "MemoryProposer", "Mix",
    "Neighbour", "Query",
    "StudyEntry", "TrialEntry", "export_jsonl", "format_examples", "import_jsonl", "in_context_examples",
    "map_config", "query_for", "rank_normalise", "write_pack",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'hyperpilot.memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hyperpilot.memory.{_PUBLIC[name]}"), name)
    globals()[name] = value  # the next access is a plain attribute
    return value
