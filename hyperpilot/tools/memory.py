"""Agent tool: search the trial memory for past studies like a description."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hyperpilot.tools.runtime import Runtime, safe


class SearchMemoryArgs(BaseModel):
    query: str = Field(min_length=1, max_length=2000, description="words describing a dataset or task")
    k: int = Field(5, ge=1, le=50, description="how many studies")


@safe
def search_memory(args: SearchMemoryArgs, runtime: Runtime) -> dict[str, Any]:
    """The past studies (memory) whose dataset card is closest to `query`, with their best config."""
    from hyperpilot.memory import Memory

    memory = runtime.memory if isinstance(runtime.memory, Memory) else Memory()
    found = memory.search(args.query, args.k)
    return {"studies": [{"id": e.id, "dataset": e.dataset, "model": e.model, "metric": e.metric,
                         "best_score": e.best_score, "best_config": e.best_config, "n_trials": e.n_trials,
                         "similarity": round(s, 4)} for e, s in found],
            **({} if found else {"note": "no past study in the memory yet"})}
