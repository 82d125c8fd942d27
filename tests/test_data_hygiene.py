"""What a model may see: columns the user drops, row indices and ID columns dropped with a
notice, and a warning when one feature alone predicts the target (a leak)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from hyperpilot import Assistant, Task
from hyperpilot.data import SKLEARN_DATASETS, Dataset, id_columns, infer_task_type, leaky_columns, load_dataset, screen
from hyperpilot.errors import DataError
from hyperpilot.sandbox import InProcessExecutor


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "Unnamed: 0": np.arange(n),  # a saved DataFrame's index
        "customer_id": rng.permutation(n) + 1000,  # shuffled, but named like an ID
        "PassengerId": rng.permutation(n),
        "id": [f"C{i:05d}" for i in rng.permutation(n)],  # text IDs
        "step_two": np.arange(n, 0, -1) * 2,  # a counter, descending in steps of 2
        "income": rng.permutation(n) * 37 + 5,  # unique integers, neither counted nor ID-named: a feature
        "price": np.sort(rng.choice(10_000, n, replace=False)),  # sorted by a unique integer feature: stays
        "weight": rng.normal(70, 10, n),  # a unique float: a feature
        "uid": rng.normal(0, 1, n),  # ID-named, but real numbers: a feature
        "paid": rng.permutation(n),  # ends in 'id' but is not an ID name
        "visits": rng.integers(0, 5, n),  # not unique
        "flag": rng.choice([True, False], n),
    })


def test_row_indices_and_ids_are_found_and_features_kept() -> None:
    found = id_columns(_frame())
    assert set(found) == {"Unnamed: 0", "customer_id", "PassengerId", "id", "step_two"}
    assert "row index" in found["Unnamed: 0"] and "row index" in found["step_two"]
    assert "ID" in found["customer_id"] and "ID" in found["id"]


def test_an_id_with_a_missing_value_or_a_repeat_is_kept() -> None:
    frame = pd.DataFrame({"id": [1.0, 2.0, np.nan, 4.0] * 5, "row_id": list(range(19)) + [3]})
    assert id_columns(frame) == {}


def test_screen_drops_ids_with_one_notice_and_records_them(caplog: pytest.LogCaptureFixture) -> None:
    frame = _frame()
    data = Dataset("t", frame, pd.Series(np.random.default_rng(1).choice(["a", "b"], len(frame)), name="y"), "y")
    with caplog.at_level(logging.WARNING, logger="hyperpilot.data"):
        out = screen(data, "binary")
    notices = [r for r in caplog.records if r.name == "hyperpilot.data"]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()
    assert "not using 5 columns of 't' as features" in notices[0].getMessage()
    assert "'Unnamed: 0' is a row index" in notices[0].getMessage()
    assert set(out.dropped) == {"Unnamed: 0", "customer_id", "PassengerId", "id", "step_two"}
    assert list(out.X.columns) == ["income", "price", "weight", "uid", "paid", "visits", "flag"]
    assert out.leaks == {} and out.y is data.y


def test_drop_removes_columns_and_names_close_matches() -> None:
    data = load_dataset("sklearn:iris")
    out = screen(data, "multiclass", ["petal width (cm)"])
    assert "petal width (cm)" not in out.X.columns and out.dropped == {"petal width (cm)": "dropped as asked"}
    with pytest.raises(DataError) as info:
        screen(data, "multiclass", ["petal widht (cm)"])
    assert str(info.value) == ("column 'petal widht (cm)' to drop is not in 'sklearn:iris'; "
                               "did you mean 'petal width (cm)', 'sepal width (cm)' or 'petal length (cm)'?")
    with pytest.raises(DataError, match="did you mean 'sepal length \\(cm\\)'"):
        screen(data, "multiclass", ["SEPAL LENGTH (CM)"])
    with pytest.raises(DataError, match="'nothing_like_it' to drop is not in 'sklearn:iris'; columns are: sepal length"):
        screen(data, "multiclass", ["nothing_like_it"])
    with pytest.raises(DataError, match="'target' is the target of 'sklearn:iris'; it cannot be dropped"):
        screen(data, "multiclass", ["target"])
    with pytest.raises(DataError, match="no feature columns left after dropping"):
        screen(data, "multiclass", [str(c) for c in data.X.columns])


@pytest.mark.parametrize("name", SKLEARN_DATASETS)
def test_no_leak_warning_on_the_builtin_datasets(name: str, caplog: pytest.LogCaptureFixture) -> None:
    data = load_dataset(f"sklearn:{name}")
    with caplog.at_level(logging.WARNING, logger="hyperpilot.data"):
        out = screen(data, infer_task_type(data.y))
    assert out.leaks == {} and out.dropped == {} and not caplog.records


def test_leaks_are_found() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["u", "v", "w"], n)})
    y = pd.Series(np.where(X.a + rng.normal(size=n) > 0, "yes", "no"), name="churn")
    leaky = X.assign(status=y.map({"yes": "closed", "no": "open"}),  # the label, renamed
                     code=y.map({"yes": 7, "no": 3}) + rng.integers(0, 2, n) * 0.1)  # a numeric recode
    assert leaky_columns(X, y, "binary") == {}
    assert leaky_columns(leaky, y, "binary") == {"status": 1.0, "code": 1.0}
    value = pd.Series(3 * X.a + rng.normal(0, 1, n), name="spend")  # a explains 90 %: a feature
    derived = X.assign(spend_x2=value * 2 + 1, noisy=value + rng.normal(0, 2, n))
    assert set(leaky_columns(derived, value, "regression")) == {"spend_x2"}
    # with a 99.5 % majority class, 99.5 % accuracy is no leak
    rare = pd.Series(np.where(np.arange(n) % 200 == 0, "fraud", "ok"))
    assert leaky_columns(X.assign(noise=rng.normal(size=n)), rare, "binary") == {}


def test_leak_warning_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    data = load_dataset("sklearn:wine")
    data = Dataset(data.name, data.X.assign(grade=data.y.map({0: "A", 1: "B", 2: "C"})), data.y, "target")
    with caplog.at_level(logging.WARNING, logger="hyperpilot.data"):
        out = screen(data, "multiclass")
    assert out.leaks == {"grade": 1.0} and "grade" in out.X.columns  # warned about, not dropped
    (record,) = caplog.records
    assert record.getMessage() == ("column 'grade' (accuracy 1.000) alone predicts target 'target' almost perfectly: "
                                   "a leak if it is only known once the target is; if so, drop it (--drop)")


def test_leak_check_is_cheap_on_a_wide_table() -> None:
    """10,000 rows × 50 columns (numbers and text): it samples 2,000 rows; well under a second
    on an idle core, so 10 s leaves room for a busy machine."""
    rng = np.random.default_rng(0)
    n = 10_000
    X = pd.DataFrame(rng.normal(size=(n, 45)), columns=[f"x{i}" for i in range(45)])
    for i in range(5):
        X[f"t{i}"] = rng.choice([f"v{j}" for j in range(30)], n)
    y = pd.Series((X.x0 + X.x1 + rng.normal(size=n) > 0).astype(int))
    start = time.perf_counter()
    assert leaky_columns(X, y, "binary") == {}
    assert time.perf_counter() - start < 10


def _sorted_with_index(path: Path) -> Path:
    """The issue's case: a noisy table sorted by its target, saved with pandas' row index."""
    X, y = make_classification(n_samples=300, n_features=6, n_informative=3, flip_y=0.25, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]).assign(label=np.where(y == 1, "yes", "no"))
    frame.sort_values("label").reset_index(drop=True).to_csv(path)  # index=True: the 'Unnamed: 0' column
    return path


def _solve(path: Path, **task: object) -> object:
    assistant = Assistant(executor=InProcessExecutor(), llm="none", memory=None)
    return assistant.solve(Task(data=str(path), target="label", models=["decision_tree"], n_trials=3, cv_folds=2,
                                **task))  # type: ignore[arg-type]


def test_a_row_index_of_a_sorted_file_no_longer_leaks(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _sorted_with_index(tmp_path / "sorted.csv")
    # before: the row index was a feature, and it alone gives the label (CV 1.0)
    assert list(load_dataset(str(path), "label").X.columns)[0] == "Unnamed: 0"
    monkeypatch.setattr("hyperpilot.data.id_columns", lambda X: {})
    with caplog.at_level(logging.WARNING, logger="hyperpilot.data"):
        before = _solve(path)
    assert before.cv_score >= 0.99  # type: ignore[attr-defined]
    assert "**Suspected leak:** `Unnamed: 0` alone scores 1.000" in before.report_path.read_text()  # type: ignore[attr-defined]
    assert "column 'Unnamed: 0' (accuracy 1.000) alone predicts target 'label'" in caplog.text  # the leak check sees it
    monkeypatch.undo()
    caplog.clear()
    # now: dropped with a one-line notice, recorded, and the score is honest
    with caplog.at_level(logging.WARNING, logger="hyperpilot.data"):
        after = _solve(path)
    assert "not using a column of 'sorted' as a feature: 'Unnamed: 0' is a row index" in caplog.text
    assert "alone predicts" not in caplog.text
    assert after.dataset_card.dropped == {"Unnamed: 0": "a row index (unique integers in constant steps)"}  # type: ignore[attr-defined]
    assert "Dropped: Unnamed: 0" in after.dataset_card.to_text()  # type: ignore[attr-defined]
    assert after.cv_score < 0.9  # type: ignore[attr-defined]
    report = after.report_path.read_text()  # type: ignore[attr-defined]
    assert "- Not used as a feature: `Unnamed: 0` (a row index" in report and "Suspected leak" not in report
    import joblib

    model = joblib.load(after.model_path)  # type: ignore[attr-defined]
    assert "Unnamed: 0" not in model.features


def test_task_drop_reaches_the_model(tmp_path: Path) -> None:
    path = _sorted_with_index(tmp_path / "sorted.csv")
    result = _solve(path, drop=["f0", "f1"])
    import joblib

    assert joblib.load(result.model_path).features == ["f2", "f3", "f4", "f5"]  # type: ignore[attr-defined]
    assert result.dataset_card.dropped["f0"] == "dropped as asked"  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="^column 'F1' to drop is not in 'sorted'; did you mean 'f1'\\?$"):
        _solve(path, drop=["F1"])
