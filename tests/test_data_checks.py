"""Data checks before the first trial: infinite values, classes too small for the CV folds,
a held-out split too small for the classes, text encodings — and a fuzz test (hypothesis)
that every small CSV and task spec ends in a usable dataset or one clear `HyperpilotError` line."""

from __future__ import annotations

import csv
import io
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hyperpilot import Assistant, Task, studies
from hyperpilot.agent.request import parse_request
from hyperpilot.cards import DatasetCard
from hyperpilot.cli import app
from hyperpilot.core.cv import CrossValidation
from hyperpilot.data import (
    Dataset,
    check_finite,
    check_folds,
    check_target,
    infer_task_type,
    load_dataset,
    screen,
    split,
)
from hyperpilot.errors import DataError, HyperpilotError, TaskError
from hyperpilot.metrics import METRICS
from hyperpilot.sandbox import InProcessExecutor

CLI_ENV = {"HYPERPILOT_LLM": "none", "COLUMNS": "240", "OMP_NUM_THREADS": "1"}


def _frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n),
                         "y": rng.choice(["yes", "no"], n)})


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "d.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _error(exc: type[Exception], fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def _error_line(output: str) -> str:
    """The CLI's error: one line, the last thing printed (after --no-sandbox's warning)."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and output.rstrip().endswith(errors[0]), output
    return errors[0]


# -- infinite values -------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity", "1e400"])
def test_infinite_feature_is_named(tmp_path: Path, token: str) -> None:
    frame = _frame().astype({"a": object})
    frame.loc[[3, 7], "a"] = token
    message = _error(DataError, load_dataset, str(_csv(tmp_path, frame)), "y")
    assert "column 'a' (2 rows)" in message and "infinite" in message
    assert "leave the cells empty" in message and "'b'" not in message


def test_several_infinite_columns_and_nan_is_fine(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[0, "a"] = np.inf
    frame.loc[1, "b"] = -np.inf
    frame.loc[2:5, "a"] = np.nan
    message = _error(DataError, load_dataset, str(_csv(tmp_path, frame)), "y")
    assert "columns 'a' (1 row), 'b' (1 row)" in message
    frame.loc[[0, 1], ["a", "b"]] = np.nan  # missing values are imputed, not refused
    data = load_dataset(str(_csv(tmp_path, frame, "nan.csv")), "y")
    assert data.X["a"].isna().sum() == 6


def test_infinite_target_is_named(tmp_path: Path) -> None:
    frame = _frame()
    frame["y"] = np.arange(len(frame), dtype=float)
    frame.loc[4, "y"] = -np.inf
    frame.loc[5, "y"] = np.nan  # dropped, as before
    message = _error(DataError, load_dataset, str(_csv(tmp_path, frame)), "y")
    assert message.startswith("target 'y'") and "1 infinite value" in message


def test_check_finite_ignores_text_and_bools() -> None:
    X = pd.DataFrame({"t": ["inf", "x"], "b": [True, False], "n": [1.0, np.nan]})
    check_finite(X, pd.Series([0, 1], name="y"), "mem")


def test_infinite_values_stop_a_solve_before_any_trial(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[0, "b"] = np.inf
    trials: list[object] = []
    assistant = Assistant(executor=InProcessExecutor(), on_trial=trials.append, llm="none", memory=False)
    with pytest.raises(DataError, match="'b'"):
        assistant.solve(Task(data=str(_csv(tmp_path, frame)), target="y", models=["knn"], n_trials=2))
    assert trials == [] and studies.list_studies() == []


# -- classes too small for the folds, and for the held-out split -------------------------

def _rare_class_frame() -> pd.DataFrame:
    frame = _frame(60)
    frame.loc[:3, "y"] = "rare"  # 4 rows: 3 train + 1 held out
    return frame


def test_class_smaller_than_the_folds_stops_before_any_trial(tmp_path: Path) -> None:
    path = str(_csv(tmp_path, _rare_class_frame()))
    trials: list[object] = []
    assistant = Assistant(executor=InProcessExecutor(), on_trial=trials.append, llm="none", memory=False)
    message = _error(DataError, assistant.solve, Task(data=path, target="y", models=["knn"], n_trials=2, cv_folds=5))
    assert "class 'rare' (3 rows) of target 'y'" in message and "5 cross-validation folds" in message
    assert "--folds 3" in message
    assert trials == [] and studies.list_studies() == []
    result = assistant.solve(Task(data=path, target="y", models=["knn"], n_trials=1, cv_folds=3, study_name="rare-ok"))
    assert result.n_trials == 1


def test_check_folds_messages() -> None:
    task = Task(data="mem", cv_folds=4).resolved("multiclass")
    y = pd.Series(["a"] * 10 + ["b"] * 3 + ["c"] * 1, name="label")
    message = _error(DataError, check_folds, y, task)
    assert "classes 'b' (3 rows), 'c' (1 row) of target 'label'" in message and "have fewer" in message
    assert "--folds" not in message  # a class with one row cannot be fixed by fewer folds
    check_folds(pd.Series(["a", "b"] * 4, name="label"), task)
    regression = Task(data="mem", cv_folds=10).resolved("regression")
    message = _error(DataError, check_folds, pd.Series(np.arange(8.0)), regression)
    assert "has 8 rows, fewer than the 10" in message and "--folds 8" in message


def test_held_out_split_too_small_for_the_classes() -> None:
    y = pd.Series(np.repeat(["a", "b", "c", "d", "e"], 2), name="y")
    data = Dataset("mem", pd.DataFrame({"x": np.arange(10)}), y, "y")
    task = Task(data="mem").resolved("multiclass")
    message = _error(DataError, split, data, task)
    assert "5 classes" in message and "8 for training and 2 held out" in message


def test_cli_folds_error_is_one_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, _rare_class_frame())
    result = CliRunner().invoke(app, ["solve", "--data", str(path), "--target", "y", "--model", "knn", "--trials", "1",
                                      "--no-sandbox", "--no-memory"], env=CLI_ENV)
    assert result.exit_code == 2
    assert _error_line(result.output).startswith("error: class 'rare' (3 rows)")


# -- encodings ------------------------------------------------------------------------------------

def _latin1_csv(tmp_path: Path) -> Path:
    frame = _frame()
    frame["c"] = np.where(frame["c"] == "x", "café", "crème")
    path = tmp_path / "latin.csv"
    path.write_bytes(frame.rename(columns={"a": "größe"}).to_csv(index=False).encode("latin-1"))
    return path


def test_wrong_encoding_says_which_and_what_to_do(tmp_path: Path) -> None:
    path = _latin1_csv(tmp_path)
    message = _error(DataError, load_dataset, str(path), "y")
    assert "as utf-8 text" in message and "--encoding latin-1" in message and "offset" in message
    data = load_dataset(str(path), "y", encoding="latin-1")
    assert "größe" in data.X.columns and set(data.X["c"]) == {"café", "crème"}
    message = _error(DataError, load_dataset, str(path), "y", encoding="utf-16")
    assert "as utf-16" in message


def test_unknown_encoding() -> None:
    assert "unknown encoding 'klingon'" in _error(TaskError, Task, data="x.csv", encoding="klingon")
    assert "unknown encoding" in _error(DataError, load_dataset, __file__, "y", encoding="klingon")


def test_encoding_through_the_cli_and_a_request(tmp_path: Path) -> None:
    path = _latin1_csv(tmp_path)
    args = ["solve", "--data", str(path), "--target", "y", "--model", "knn", "--trials", "1", "--folds", "2",
            "--no-sandbox", "--no-memory", "--study", "latin"]
    refused = CliRunner().invoke(app, args, env=CLI_ENV)
    assert refused.exit_code == 2 and _error_line(refused.output).endswith("e.g. --encoding latin-1")
    done = CliRunner().invoke(app, [*args, "--encoding", "latin-1"], env=CLI_ENV)
    assert done.exit_code == 0, done.output
    assert studies.stored_task(studies.load_study("latin")).encoding == "latin-1"  # resume reads it the same way
    task = parse_request(f"tune knn on {path} to predict y", encoding="latin-1")
    assert task.encoding == "latin-1" and task.target == "y"
    with pytest.raises(TaskError, match="--encoding latin-1"):
        parse_request(f"tune knn on {path} to predict y")


# -- fuzzing: any small CSV and task spec -> a dataset or one clear error line --------------

NAMES = st.one_of(st.sampled_from(["y", "a", "", " ", "y", "é列", "a.1", "Unnamed: 0", "x\ny", '"q"', "1"]),
                  st.text(min_size=0, max_size=6))
CELLS = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["", "inf", "-inf", "NaN", "1e400", "True", "false", "x", "y", "é", "a,b", "\n"]),
    st.booleans(), st.text(max_size=4),
)
ENCODINGS = [None, "utf-8", "latin-1", "utf-16", "cp1252"]


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[str], str]:
    names = draw(st.lists(NAMES, min_size=2, max_size=5))
    n_rows = draw(st.integers(12, 60) | st.sampled_from([0, 1, 5, 9, 10, 11]))
    # a few repeated values per column, so that some targets are usable classes
    pools = [draw(st.lists(CELLS, min_size=2, max_size=5)) for _ in names]
    rows = [[draw(st.sampled_from(pool)) for pool in pools] for _ in range(n_rows)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(names)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    raw = buffer.getvalue().encode(encoding, errors="replace")
    kind = draw(st.sampled_from(["clean"] * 6 + ["corrupt", "empty", "random"]))
    if kind == "corrupt":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    elif kind == "empty":
        raw = b""
    elif kind == "random":
        raw = draw(st.binary(max_size=200))
    return raw, names, encoding


SPECS = st.fixed_dictionaries({
    "target": st.one_of(st.none(), st.sampled_from(["y", "a", "", "nope", "é列"])),
    "task_type": st.sampled_from([None, None, None, "binary", "multiclass", "regression"]),
    "metric": st.sampled_from([None] * 40 + sorted(METRICS)),
    "cv_folds": st.integers(2, 8),
    "test_size": st.sampled_from([0.1, 0.2, 0.5, 0.85]),
    "encoding": st.sampled_from(ENCODINGS),  # mostly replaced by the file's own (see the test)
})


def prepare(path: Path, spec: dict[str, Any], target: str | None) -> CrossValidation:
    """What `Assistant.solve` does with the data before its first trial."""
    task = Task(data=str(path), **{**spec, "target": target})
    data = load_dataset(task.data, task.target, encoding=task.encoding)
    task_type = task.task_type or infer_task_type(data.y)
    check_target(data.y, task_type, task.data)
    data = screen(data, task_type, task.drop, task.split_seed)
    task = task.resolved(task_type)
    X_train, _, y_train, _ = split(data, task)
    check_folds(y_train, task)
    DatasetCard.profile(Dataset(data.name, X_train, y_train, data.target), task_type)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cv = CrossValidation(InProcessExecutor(), X_train, y_train, task)
    assert not [w for w in caught if "least populated" in str(w.message)], "a class was too small for the folds"
    return cv


@settings(max_examples=600, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(file=csv_files(), spec=SPECS, pick=st.integers(0, 10), suffix=st.sampled_from([".csv", ".csv", ".tsv", ".txt", ""]))
def test_fuzz_load_and_check(file: tuple[bytes, list[str], str], spec: dict[str, Any], pick: int, suffix: str) -> None:
    raw, names, encoding = file
    target = names[pick % len(names)] if pick < 6 else spec["target"]  # mostly a real column
    if pick % 4:  # mostly the file's own encoding, else a random (often wrong) one
        spec = {**spec, "encoding": None if encoding == "utf-8" and pick % 2 else encoding}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(raw)
        try:
            cv = prepare(path, spec, target)
        except HyperpilotError as e:
            message = str(e)
            assert message.strip() and "\n" not in message and "Traceback" not in message, repr(message)
            return
    assert len(cv.folds) == spec["cv_folds"]
    assert all(len(train) and len(valid) for train, valid in cv.folds)
    assert np.isfinite(cv.y.astype(float)).all() if cv.classes is None else len(cv.classes) >= 2


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    """Well-formed tables whose target and features stress the checks: rare classes, many
    classes, few rows, NaN and inf in features or target, text, bools, constant columns."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(10, 80))
    n_classes = draw(st.integers(1, 15))
    weights = rng.dirichlet(np.full(n_classes, draw(st.sampled_from([0.2, 1.0, 10.0]))))
    labels = rng.choice(n_classes, size=n, p=weights)
    kind = draw(st.sampled_from(["text", "int", "float", "bool"]))
    y: Any = {"text": np.array([f"c{v}" for v in labels], dtype=object), "int": labels,
              "float": labels + rng.normal(size=n), "bool": labels % 2 == 0}[kind]
    frame = pd.DataFrame({"y": y})
    for i in range(draw(st.integers(1, 4))):
        column = rng.normal(size=n) if draw(st.booleans()) else rng.choice(["u", "v", "w"], size=n).astype(object)
        frame[f"f{i}"] = column
    for share, value in ((draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])), np.nan),
                         (draw(st.sampled_from([0.0, 0.0, 0.0, 0.05])), np.inf)):
        mask = rng.random(frame.shape) < share
        numeric = np.array([pd.api.types.is_float_dtype(frame[c]) for c in frame.columns])
        frame = frame.mask(mask & numeric, value)
    return frame


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(frame=tables(), spec=SPECS)
def test_fuzz_tables(frame: pd.DataFrame, spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        frame.to_csv(path, index=False)
        try:
            cv = prepare(path, {**spec, "encoding": None}, "y")
        except HyperpilotError as e:
            message = str(e)
            assert message.strip() and "\n" not in message, repr(message)
            return
    assert len(cv.folds) == spec["cv_folds"]
    assert all(len(train) and len(valid) for train, valid in cv.folds)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".parquet", ".pq", ".tsv", "", ".json"]),
       encoding=st.sampled_from(ENCODINGS))
def test_fuzz_random_bytes(raw: bytes, suffix: str, encoding: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"blob{suffix}"
        path.write_bytes(raw)
        try:
            load_dataset(str(path), "y", encoding=encoding)
        except HyperpilotError as e:
            assert str(e).strip() and "\n" not in str(e), repr(str(e))


def test_fuzz_finds_nothing_math_cannot_use() -> None:
    """A sanity check of the fuzz oracle: a clean file passes `prepare` end to end."""
    with tempfile.TemporaryDirectory() as folder:
        path = _csv(Path(folder), _frame(50))
        cv = prepare(path, {"task_type": None, "metric": None, "cv_folds": 5, "test_size": 0.2, "encoding": None}, "y")
        assert len(cv.folds) == 5 and cv.classes == ["no", "yes"] and not math.isnan(float(cv.y.mean()))
