"""Agent tool: profile a dataset (its `DatasetCard`, the card the planner and memory see)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from hyperpilot.errors import DataError
from hyperpilot.tools.runtime import Runtime, safe


class ProfileArgs(BaseModel):
    data: str = Field(description="a CSV or Parquet file, or a built-in such as sklearn:iris")
    target: str | None = Field(None, description="the column to predict (built-in datasets: leave empty)")


@safe
def profile_dataset(args: ProfileArgs, runtime: Runtime) -> dict[str, Any]:
    """Rows, columns and their kinds, missing values, class balance or target statistics."""
    from hyperpilot.cards import DatasetCard
    from hyperpilot.data import SKLEARN_PREFIX, check_target, infer_task_type, load_dataset

    data = args.data
    if not data.startswith(SKLEARN_PREFIX):
        path = runtime.path(data)
        if not path.is_file():
            raise DataError(f"there is no file '{data}' (looked in {path.parent}); give an existing CSV or Parquet file")
        data = str(path)
    dataset = load_dataset(data, args.target)
    task_type = infer_task_type(dataset.y)
    check_target(dataset.y, task_type, data)
    card = DatasetCard.profile(dataset, task_type)
    return {"dataset": card.name, "target": card.target, "task_type": task_type, "rows": card.n_rows,
            "features": card.n_features, "card": json.loads(card.model_dump_json()), "text": card.to_text()}
