"""`Task(data=...)` takes a path, a pandas DataFrame or (X, y); an in-memory table is written
into the study folder when a solve starts, so the stored task (and `resume`) reads it there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from hyperpilot import Assistant, Task, studies
from hyperpilot.errors import DataError, StudyError, TaskError
from hyperpilot.sandbox import InProcessExecutor


def _wine() -> pd.DataFrame:
    data = load_wine(as_frame=True)
    return data.frame.assign(target=data.target.map({0: "a", 1: "b", 2: "c"}))


def test_a_dataframe_is_kept_in_memory_until_a_solve_stores_it() -> None:
    frame = _wine()
    task = Task(data=frame, target="target", models=["logistic_regression"], n_trials=2, cv_folds=2)
    assert task.data == "<dataframe>" and task.frame is not None and task.frame.shape == frame.shape
    assert task.resolved("multiclass").frame is task.frame and task.updated(sampler="random").frame is task.frame
    assert task.model_dump()["data"] == "<dataframe>"  # JSON never holds the table

    result = Assistant(llm="none", memory=False, executor=InProcessExecutor()).solve(task)
    folder = studies.study_dir(result.study_name)
    stored = studies.stored_task(studies.load_study(result.study_name))
    assert result.study_name.startswith("dataframe-") and Path(stored.data).parent == folder
    assert pd.read_parquet(stored.data).equals(frame.reset_index(drop=True))
    # resume reads the table from the study folder: same objective, more trials
    again = Assistant(llm="none", memory=False, executor=InProcessExecutor()).resume(result.study_name, n_trials=3)
    assert again.n_trials == 3 and again.task.data == stored.data

    other = frame.assign(alcohol=frame.alcohol + 1)  # other data under the same study name is refused
    with pytest.raises(StudyError, match="was made for data="):
        Assistant(llm="none", memory=False, executor=InProcessExecutor()).solve(
            Task(data=other, target="target", models=["logistic_regression"], n_trials=1, cv_folds=2,
                 study_name=result.study_name))


def test_arrays_get_names_and_a_path_object_is_a_path(tmp_path: Path) -> None:
    X, y = np.arange(40.0).reshape(20, 2), np.array([0, 1] * 10)
    task = Task(data=(X, y))
    assert task.data == "<arrays>" and task.target == "target"
    assert list(task.frame.columns) == ["x0", "x1", "target"] and task.frame.target.tolist() == y.tolist()
    named = Task(data=(pd.DataFrame(X, columns=["a", "b"]), pd.Series(y, name="label")))
    assert named.target == "label" and list(named.frame.columns) == ["a", "b", "label"]
    assert Task(data=(X, y.reshape(-1, 1))).frame.shape == (20, 3)  # a column vector is a vector
    assert Task(data=tmp_path / "churn.csv").data == str(tmp_path / "churn.csv")


@pytest.mark.parametrize(("data", "target", "error", "message"), [
    (pd.DataFrame({"a": [1, 2], "y": [0, 1]}), None, TaskError, "give the target column of the DataFrame: target=one of a, y"),
    (pd.DataFrame({"a": [1, 2], "y": [0, 1]}), "z", DataError, "target column 'z' is not in the DataFrame; columns are: a, y"),
    (pd.DataFrame(), "y", DataError, "the DataFrame is empty"),
    ((np.zeros(5), np.zeros(5)), None, DataError, "X must be 2-D (rows × features); got 1-D"),
    ((np.zeros((5, 2)), np.zeros(4)), None, DataError, "X has 5 rows but y has 4 values"),
    ((np.zeros((5, 2)), np.zeros((5, 2))), None, DataError, "y must be 1-D"),
    ((np.zeros((0, 2)), np.zeros(0)), None, DataError, "X is empty"),
    ((pd.DataFrame({"target": [1.0] * 3}), [0, 1, 0]), None, DataError, "X already has a column named 'target'"),
    ([1, 2, 3], None, TaskError, "data must be a file path, sklearn:NAME, a pandas DataFrame or (X, y); got list"),
])
def test_bad_in_memory_data_is_one_line(data: object, target: str | None, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        Task(data=data, target=target)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_nothing_held_out() -> None:
    task = Task(data=_wine(), target="target", models=["logistic_regression"], n_trials=2, cv_folds=2, test_size=0)
    result = Assistant(llm="none", memory=False, executor=InProcessExecutor()).solve(task)
    assert result.test_score is None and "no held-out test" in result.summary()
    assert result.dataset_card.n_rows == len(_wine())  # every row in the CV
    assert "nothing held out" in result.report_path.read_text()
