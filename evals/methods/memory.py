"""hyperpilot with memory, leave-one-dataset-out.

`Assistant(llm="none")` with a `MemoryProposer` over a real `Memory` (chromadb + MiniLM)
imported from a memory pack, the problem's own dataset excluded: the warm start can only
transfer from the other datasets. A suite's pack is made from that suite's cached cold runs
of a source method (`python -m evals pack --suite fast`), i.e. what a user's memory holds
after cold solves of the other datasets. On a table, the same `MemoryProposer` runs in
hyperpilot's loop (`Hyperpilot.run_table`), its query made from the table's card."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from evals.methods.hyperpilot import Hyperpilot
from evals.problems import Problem

SOURCE = "hyperpilot-bo"


def pack_path(results: Path, suite: str) -> Path:
    return results / f"{suite}-memory-pack.jsonl"


class HyperpilotMemory(Hyperpilot):
    """`transfer=False`: the portfolio only, then hyperpilot's BO (an ablation)."""

    def __init__(self, pack: Path, name: str = "hyperpilot-memory", transfer: bool = True) -> None:
        super().__init__(name, llm="none")
        self.pack = pack
        self.transfer = transfer
        self._memory: Any = None

    def unavailable(self) -> str | None:
        if not self.pack.exists():
            return f"no memory pack at {self.pack}; make it with `python -m evals pack` after the {SOURCE} runs"
        return None

    def memory(self) -> Any:
        """The pack imported into a fresh store, once per process (read-only afterwards)."""
        if self._memory is None:
            from hyperpilot.memory import Memory, import_jsonl

            self._memory = Memory(Path(tempfile.mkdtemp(prefix="hp-evals-memory-")) / "memory")
            import_jsonl(self._memory, self.pack)
        return self._memory

    def table_proposers(self, problem: Problem, card: Any, budget: int) -> list[Any]:
        """On a table: the same `MemoryProposer` as a solve uses (portfolio, then the transfer
        model), with the table's dataset card as the query."""
        from hyperpilot.memory import MemoryProposer, Query

        if problem.card is None:
            return []
        study_card = problem.card()
        return [MemoryProposer(self.memory(), write=False, query=Query(study_card.text, study_card.meta),
                               exclude_datasets=[study_card.dataset], transfer=self.transfer)]

    def assistant(self, problem: Problem) -> Any:
        from hyperpilot import Assistant
        from hyperpilot.memory import MemoryProposer
        from hyperpilot.sandbox import InProcessExecutor

        dataset = (problem.task or {})["data"]  # Hyperpilot.run has checked that there is a task
        warm = MemoryProposer(self.memory(), exclude_datasets=[dataset], write=False, transfer=self.transfer)
        return Assistant(executor=InProcessExecutor(), llm="none", memory=warm)


def write_suite_pack(rows: list[dict[str, Any]], problems: list[Problem], path: Path, source: str = SOURCE) -> tuple[int, int]:
    """A memory pack of every cached `source` run on `problems`: one study per (problem,
    seed) with its dataset card and all its trials. Returns (studies, trials)."""
    from hyperpilot.memory import StudyEntry, TrialEntry, write_pack

    cards = {p.name: p.card for p in problems if p.card is not None}
    packs = []
    for r in rows:
        if r["method"] != source or r["problem"] not in cards or not r.get("configs"):
            continue
        card = cards[r["problem"]]()
        sign = -1 if card.direction == "maximize" else 1  # loss = sign * score
        sid = f"{r['problem']}-{source}-seed{r['seed']}/{card.model}"
        study = StudyEntry(id=sid, dataset=card.dataset, task_type=card.task_type, model=card.model, family=card.family,
                           metric=card.metric, direction=card.direction, card_text=card.text, meta_features=card.meta,
                           origin=f"pack:{path.stem}")
        trials = [TrialEntry(study_id=sid, number=i, model=card.model, config=c,
                             score=sign * loss if math.isfinite(loss) else None,
                             status="complete" if math.isfinite(loss) else "failed", source="default" if i == 0 else "bo")
                  for i, (loss, c) in enumerate(zip(r["losses"], r["configs"], strict=False))]
        packs.append((study, trials))
    return write_pack(path, packs)
