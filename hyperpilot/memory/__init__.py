"""Trial memory over chromadb: past studies that warm-start new ones.

    Memory            the store (chromadb under HYPERPILOT_HOME/memory, local embeddings)
    MemoryProposer    warm-start trials (source=memory: a zero-shot portfolio, then a transfer
                      TPE over similar past tasks' trials, `transfer.py`) + writes every trial
    in_context_examples / format_examples / MemoryProposer.examples()   for the LLM planner
    import_jsonl / export_jsonl / write_pack   JSON Lines exports and memory packs
    Journal           where a solve leaves its records while another process has the memory

Importing this package is cheap: the names above are imported on first use (so that
`hyperpilot memory --help` loads nothing heavy), chromadb and the embedding model on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperpilot.lazy import lazy_exports

# public name -> the module that defines it
_PUBLIC = {name: f"hyperpilot.memory.{module}" for module, names in {
    "journal": ["Journal"],
    "packs": ["ImportReport", "export_jsonl", "import_jsonl", "write_pack"],
    "proposer": ["MemoryProposer"],
    "records": ["StudyEntry", "TrialEntry", "rank_normalise"],
    "retrieve": ["MIX", "K", "MemoryExample", "format_examples", "in_context_examples", "query_for"],
    "similarity": ["Mix", "map_config"],
    "store": ["Memory", "MemoryBusy", "Neighbour", "Query"],
}.items() for name in names}

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

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
