"""Loading data: CSV, Parquet and scikit-learn built-ins, mixed column types and missing
values, task-type inference, and one clear DataError line for every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from hyperpilot import Assistant, Task
from hyperpilot.core.cv import CrossValidation
from hyperpilot.core.loop import TrialHandle
from hyperpilot.core.types import Suggestion
from hyperpilot.data import SKLEARN_DATASETS, check_target, infer_task_type, load_dataset, split
from hyperpilot.errors import DataError, HyperpilotError, TaskError
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.trainers import FittedModel, get_trainer


@pytest.fixture(autouse=True)
def _pure_bo(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the data, not the planner: no LLM."""
    monkeypatch.setenv("HYPERPILOT_LLM", "none")


def mixed_frame(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """Numeric, integer, string, boolean columns with holes, and three kinds of target."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.normal(40, 10, n).round(1),
        "visits": rng.integers(0, 6, n).astype(float),
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "region": rng.choice(["north", "south"], n),
        "active": rng.choice([True, False], n),
    })
    df.loc[::6, "age"] = np.nan
    df.loc[::7, "plan"] = None
    df.loc[::11, "visits"] = np.nan
    score = (df.age.fillna(40) - 40) / 10 + (df.plan == "pro") * 1.5
    df["churn"] = np.where(score + rng.normal(0, 0.5, n) > 0.3, "yes", "no")
    df["tier"] = pd.cut(score, [-np.inf, -0.3, 0.7, np.inf], labels=["low", "mid", "high"]).astype(str)
    df["spend"] = 100 + 20 * score + rng.normal(0, 5, n)
    return df


@pytest.fixture
def mixed(tmp_path: Path) -> dict[str, Path]:
    df = mixed_frame()
    paths = {"csv": tmp_path / "mixed.csv", "parquet": tmp_path / "mixed.parquet"}
    df.to_csv(paths["csv"], index=False)
    df.to_parquet(paths["parquet"], index=False)
    return paths


# --- loading that works ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_mixed_file_loads(mixed: dict[str, Path], fmt: str) -> None:
    data = load_dataset(str(mixed[fmt]), "churn")
    assert data.name == "mixed" and data.target == "churn"
    assert len(data.X) == len(data.y) == 90
    assert "churn" not in data.X.columns
    assert set(data.X.columns) == {"age", "visits", "plan", "region", "active", "tier", "spend"}
    assert data.X["age"].isna().sum() == 15 and data.X["plan"].isna().sum() == 13
    assert set(data.y) == {"yes", "no"}
    assert list(data.X.index) == list(range(90))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("target", "task_type", "metric"),
    [("churn", "binary", "roc_auc"), ("tier", "multiclass", "f1"), ("spend", "regression", "rmse")],
)
def test_mixed_file_end_to_end(mixed: dict[str, Path], fmt: str, target: str, task_type: str, metric: str) -> None:
    """Missing values and string columns go through the model's own pipeline."""
    data = load_dataset(str(mixed[fmt]), target)
    data = type(data)(data.name, data.X.drop(columns=[c for c in ("churn", "tier", "spend") if c in data.X]), data.y, target)
    assert infer_task_type(data.y) == task_type
    check_target(data.y, task_type, fmt)  # type: ignore[arg-type]
    task = Task(data=str(mixed[fmt]), target=target, metric=metric, cv_folds=3).resolved(task_type)  # type: ignore[arg-type]
    X_train, X_test, y_train, y_test = split(data, task)
    assert len(X_test) == 18 and len(X_train) == 72
    config = get_trainer("decision_tree").card.default_config()
    cv = CrossValidation(InProcessExecutor(), X_train, y_train, task)
    trial = optuna.create_study(direction=task.direction).ask()
    outcome = cv(TrialHandle(trial, Suggestion("decision_tree", config, "default"), 0))
    assert outcome.ok and np.isfinite(outcome.value) and len(outcome.steps) == 3  # type: ignore[arg-type]
    fitted, score = cv.refit("decision_tree", config, X_test, y_test, 0)
    pred = FittedModel(fitted, cv.classes, list(X_train.columns)).predict(X_test)
    assert len(pred) == len(X_test)
    if task_type != "regression":
        assert set(pred) <= set(data.y)  # the original string labels come back
    assert np.isfinite(score)


@pytest.mark.parametrize("name", SKLEARN_DATASETS)
def test_sklearn_builtins(name: str) -> None:
    data = load_dataset(f"sklearn:{name}")
    assert data.target == "target" and data.name == f"sklearn:{name}"
    assert len(data.X) == len(data.y) > 100 and "target" not in data.X.columns
    expected = {"iris": "multiclass", "digits": "multiclass", "wine": "multiclass",
                "breast_cancer": "binary", "diabetes": "regression"}[name]
    assert infer_task_type(data.y) == expected


def test_rows_without_a_target_are_dropped(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": range(30), "y": [0.5, np.nan, 2.0] * 10})
    df.to_csv(tmp_path / "holes.csv", index=False)
    data = load_dataset(str(tmp_path / "holes.csv"), "y")
    assert len(data.y) == 20 and not data.y.isna().any()


def test_tsv_and_extensionless(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": range(20), "y": [0, 1] * 10})
    df.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    df.to_csv(tmp_path / "plain", index=False)
    assert load_dataset(str(tmp_path / "t.tsv"), "y").X.columns.tolist() == ["x"]
    assert load_dataset(str(tmp_path / "plain"), "y").X.columns.tolist() == ["x"]


# --- task-type inference -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (pd.Series([0, 1] * 50), "binary"),
        (pd.Series([True, False] * 20), "binary"),
        (pd.Series(["spam", "ham"] * 20), "binary"),
        (pd.Series([-1.0, 1.0] * 20), "binary"),
        (pd.Series(["a", "b", "c"] * 30), "multiclass"),
        (pd.Series(np.arange(200) % 5), "multiclass"),
        (pd.Series([1.0, 2.0, 3.0] * 30), "multiclass"),
        (pd.Series(np.random.default_rng(0).normal(size=100)), "regression"),
        (pd.Series(np.arange(100)), "regression"),  # 100 distinct integers are a quantity
        (pd.Series([0.5, 1.5, 2.5] * 30), "regression"),  # three fractional values
    ],
)
def test_infer_task_type(y: pd.Series, expected: str) -> None:
    assert infer_task_type(y) == expected


# --- one clear DataError line per bad input ---------------------------------------------------


def _data_error(ref: str, target: str | None = "y") -> str:
    with pytest.raises(DataError) as info:
        load_dataset(ref, target)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert isinstance(info.value, HyperpilotError) and not isinstance(info.value, ValueError)
    return msg


def test_missing_file(tmp_path: Path) -> None:
    msg = _data_error(str(tmp_path / "nope.csv"))
    assert "does not exist" in msg and "nope.csv" in msg


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    assert "is a folder" in _data_error(str(tmp_path))


def test_binary_garbage_csv(tmp_path: Path) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    msg = _data_error(str(path))
    assert msg.startswith("cannot read") and "garbage.csv" in msg


def test_garbage_parquet(tmp_path: Path) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_text("a,b\n1,2\n")
    msg = _data_error(str(path))
    assert msg.startswith("cannot read") and "garbage.parquet" in msg


def test_parquet_with_csv_extension(tmp_path: Path) -> None:
    path = tmp_path / "really_parquet.csv"
    pd.DataFrame({"x": range(20), "y": [0, 1] * 10}).to_parquet(path)
    assert "cannot read" in _data_error(str(path))


def test_unbalanced_quote(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text('x,y\n1,"2\n3,4\n')
    assert "cannot read" in _data_error(str(path))


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("x,y\n1,2\n")
    msg = _data_error(str(path))
    assert "unsupported file type '.xlsx'" in msg and ".csv or .parquet" in msg


def test_missing_target_lists_the_columns(mixed: dict[str, Path]) -> None:
    msg = _data_error(str(mixed["csv"]), "Churn")
    assert "target column 'Churn' is not in" in msg
    assert "age, visits, plan, region, active, churn, tier, spend" in msg


def test_no_target_given_lists_the_columns(mixed: dict[str, Path]) -> None:
    msg = _data_error(str(mixed["parquet"]), None)
    assert "no target column given" in msg and "churn" in msg


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("x,y\n")
    assert "has no rows" in _data_error(str(path))


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert "is empty" in _data_error(str(path))


def test_empty_parquet(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"x": pd.Series([], dtype=float), "y": pd.Series([], dtype=float)}).to_parquet(path)
    assert "has no rows" in _data_error(str(path))


def test_too_few_rows(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"x": range(5), "y": [0, 1, 0, 1, 0]}).to_csv(path, index=False)
    assert "at least 10 are needed" in _data_error(str(path))


def test_target_only(tmp_path: Path) -> None:
    path = tmp_path / "only.csv"
    pd.DataFrame({"y": [0, 1] * 10}).to_csv(path, index=False)
    assert "no feature columns" in _data_error(str(path))


def test_unknown_sklearn_dataset() -> None:
    msg = _data_error("sklearn:mnist", None)
    assert "unknown built-in dataset 'sklearn:mnist'" in msg and "iris" in msg


def test_single_class_target() -> None:
    y = pd.Series(["yes"] * 30, name="churn")
    with pytest.raises(DataError, match="single class"):
        check_target(y, "binary", "x.csv")
    with pytest.raises(DataError, match="single class"):
        check_target(y, infer_task_type(y), "x.csv")


def test_class_with_a_single_row() -> None:
    """It could not be both trained on and held out (the test score would crash after the study)."""
    y = pd.Series(["a"] * 30 + ["b"] * 29 + ["c"], name="y")
    with pytest.raises(DataError, match="class\\(es\\) c of target 'y' in 'x.csv' have a single row"):
        check_target(y, "multiclass", "x.csv")
    check_target(pd.Series(["a"] * 30 + ["b"] * 28 + ["c"] * 2, name="y"), "multiclass", "x.csv")


def test_non_numeric_target_for_regression() -> None:
    y = pd.Series(["a", "b", "c"] * 10, name="label")
    with pytest.raises(DataError, match="target 'label' of 'x.csv' is not numeric"):
        check_target(y, "regression", "x.csv")


def test_constant_target_for_regression() -> None:
    with pytest.raises(DataError, match="has a single value"):
        check_target(pd.Series([3.5] * 20, name="y"), "regression", "x.csv")


def test_too_many_classes_for_binary() -> None:
    with pytest.raises(DataError, match="use --task multiclass"):
        check_target(pd.Series(["a", "b", "c"] * 10, name="y"), "binary", "x.csv")


# --- the same errors through Assistant.solve (before any trial runs) --------------------------


@pytest.fixture
def single_class_csv(tmp_path: Path) -> Path:
    path = tmp_path / "single.csv"
    pd.DataFrame({"x": range(30), "y": ["same"] * 30}).to_csv(path, index=False)
    return path


def test_solve_single_class(single_class_csv: Path) -> None:
    with pytest.raises(DataError, match="single class"):
        Assistant().solve(Task(data=str(single_class_csv), target="y", models=["knn"], n_trials=1))


def test_solve_string_target_as_regression(mixed: dict[str, Path]) -> None:
    with pytest.raises(DataError, match="not numeric"):
        Assistant().solve(Task(data=str(mixed["csv"]), target="churn", task_type="regression", models=["knn"], n_trials=1))


def test_solve_unknown_model(mixed: dict[str, Path]) -> None:
    with pytest.raises(TaskError, match="unknown model 'xgboost'"):
        Assistant().solve(Task(data=str(mixed["csv"]), target="churn", models=["xgboost"], n_trials=1))


def test_solve_model_that_does_not_do_the_task(mixed: dict[str, Path]) -> None:
    with pytest.raises(TaskError, match="model 'ridge' does not do binary"):
        Assistant().solve(Task(data=str(mixed["csv"]), target="churn", models=["ridge"], n_trials=1))


def test_solve_metric_that_does_not_fit_the_data(mixed: dict[str, Path]) -> None:
    with pytest.raises(TaskError, match="metric 'accuracy' does not apply to a regression task"):
        Assistant().solve(Task(data=str(mixed["csv"]), target="spend", metric="accuracy", models=["knn"], n_trials=1))


def test_unknown_metric_is_a_task_error() -> None:
    with pytest.raises(TaskError, match="unknown metric"):
        Task(data="sklearn:iris", metric="auc_pr")


def test_solve_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        Assistant().solve(Task(data=str(tmp_path / "gone.csv"), target="y", models=["knn"], n_trials=1))
