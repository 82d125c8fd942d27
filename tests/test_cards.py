"""Model cards (bundled YAML priors) and dataset cards (profiles of the data)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils._param_validation import InvalidParameterError

from hyperpilot.cards import DatasetCard, ModelCard, get_model_card, model_cards
from hyperpilot.data import Dataset, load_dataset
from hyperpilot.errors import SpaceError, TaskError
from hyperpilot.space import SearchSpace
from hyperpilot.task import Task
from hyperpilot.trainers import get_trainer
from hyperpilot.trainers.sklearn import ESTIMATORS

CARD_FILES = sorted(e.name for e in (resources.files("hyperpilot.cards") / "models").iterdir() if e.name.endswith(".yaml"))
CARDS = sorted(model_cards())


def test_every_bundled_file_is_a_card() -> None:
    assert len(CARD_FILES) >= 10
    assert sorted(f.removesuffix(".yaml") for f in CARD_FILES) == CARDS  # file name == card name


@pytest.mark.parametrize("name", CARDS)
def test_card_loads_and_its_default_fits(name: str) -> None:
    card = get_model_card(name)
    assert card.name == name and card.title and card.description.strip() and card.family
    assert card.task_types and set(card.task_types) <= {"binary", "multiclass", "regression"}
    assert len(card.space) >= 1
    assert set(card.default) == set(card.space.names)  # the default names every parameter
    assert card.space.validate(card.default, fill=False) == card.default_config()
    for p in card.space.params:
        assert p.description, f"{name}.{p.name} has no description"
    assert not set(card.fixed) & set(card.space.names)  # fixed args are never tuned


@pytest.mark.parametrize("name", CARDS)
def test_card_text_mentions_every_hyperparameter(name: str) -> None:
    card = get_model_card(name)
    text = card.to_text()
    assert card.title in text and name in text
    for p in card.space.params:
        assert f"- {p.name} (" in text
        assert p.description in text
        assert repr(card.default[p.name]) in text
    if card.notes:
        assert "Advice:" in text


@pytest.mark.parametrize("name", CARDS)
def test_card_round_trips_through_json(name: str) -> None:
    card = get_model_card(name)
    assert ModelCard.model_validate_json(card.model_dump_json()) == card


def test_card_whose_default_does_not_fit_is_rejected() -> None:
    raw = yaml.safe_load((resources.files("hyperpilot.cards") / "models" / "knn.yaml").read_text())
    raw["default"]["n_neighbors"] = 0.5
    with pytest.raises(SpaceError, match="model card 'knn': default config does not fit its space"):
        ModelCard.model_validate({**raw, "default": {**raw["default"], "p": "two"}})
    with pytest.raises(SpaceError, match="missing"):
        ModelCard.model_validate({**raw, "default": {"n_neighbors": 5}})
    with pytest.raises(SpaceError, match="unknown"):
        ModelCard.model_validate({**raw, "default": {"n_neighbors": 5, "weights": "uniform", "p": 2, "leaf_size": 30}})


def test_card_with_a_bad_space_is_rejected() -> None:
    raw = yaml.safe_load((resources.files("hyperpilot.cards") / "models" / "knn.yaml").read_text())
    raw["space"]["n_neighbors"]["low"] = 60
    with pytest.raises(SpaceError, match="low=60 > high=50 for 'n_neighbors'"):
        ModelCard.model_validate(raw)


SKLEARN_CARDS = sorted(ESTIMATORS)


def _corners(card: ModelCard) -> list[dict[str, Any]]:
    """The default config, and it with each parameter at its low, high and default, or at each choice."""
    default = card.default_config()
    configs = [default]
    for p in card.space.params:
        values = p.choices if p.type == "categorical" else [p.low, p.high, default[p.name]]
        configs += [card.space.validate({**default, p.name: v}) for v in values]
    return configs


@pytest.mark.parametrize("name", SKLEARN_CARDS)
def test_card_space_fits_the_estimators_own_constraints(name: str) -> None:
    """Every corner of a card's space builds an estimator that scikit-learn's own parameter
    validation (`_parameter_constraints`) accepts, for every task type of the card."""
    card, trainer = get_model_card(name), get_trainer(name)
    for task_type in card.task_types:
        task = Task(data="sklearn:iris", task_type=task_type).resolved(task_type)
        for config in _corners(card):
            est = trainer.estimator(config, task)  # type: ignore[attr-defined]
            inner = est.estimator if isinstance(est, (OneVsRestClassifier, CalibratedClassifierCV)) else est
            est._validate_params()
            inner._validate_params()
            got = inner.get_params()
            assert all(got[k] in (v, (v,)) for k, v in config.items())  # the config reached the estimator


def test_bad_card_ranges_fail_the_constraint_check() -> None:
    """The check above can fail: Bayesmark-style fractions out of scikit-learn's range do."""
    trainer = get_trainer("decision_tree")
    task = Task(data="sklearn:iris", task_type="multiclass").resolved("multiclass")
    config = {**get_model_card("decision_tree").default_config(), "min_samples_split": 1}
    with pytest.raises(InvalidParameterError, match="min_samples_split"):
        trainer.estimator(config, task)._validate_params()  # type: ignore[attr-defined]


def test_decision_tree_on_iris_rarely_collapses_to_a_constant() -> None:
    """Of 20 random configs of the card, at most 2 predict a single class on a fold of iris
    (Bayesmark's space did in 16 of 20 here: fractions up to 0.49 per leaf)."""
    data = load_dataset("sklearn:iris")
    task = Task(data="sklearn:iris", cv_folds=2).resolved("multiclass")
    X, y = data.X, data.y.to_numpy()
    rng = np.random.default_rng(0)
    card, trainer = get_model_card("decision_tree"), get_trainer("decision_tree")
    constant = 0
    for _ in range(20):
        config = card.space.sample(rng)
        folds = StratifiedKFold(2, shuffle=True, random_state=0).split(X, y)
        preds = [trainer.fit(config, X.iloc[a], y[a], task).predict(X.iloc[b]) for a, b in folds]
        constant += any(len(set(p)) == 1 for p in preds)
    assert constant <= 2


def test_card_space_is_a_search_space() -> None:
    assert isinstance(get_model_card("random_forest").space, SearchSpace)


def test_unknown_model_card() -> None:
    with pytest.raises(TaskError) as info:
        get_model_card("xgboost")
    assert "unknown model 'xgboost'" in str(info.value) and "random_forest" in str(info.value)


def test_model_card_for_the_wrong_task_type() -> None:
    with pytest.raises(TaskError, match="model 'ridge' does not do binary; use one of"):
        get_model_card("ridge", "binary")
    with pytest.raises(TaskError, match="does not do regression"):
        get_model_card("logistic_regression", "regression")
    assert get_model_card("ridge", "regression").name == "ridge"


# --- DatasetCard ----------------------------------------------------------------------------


@pytest.fixture
def mixed() -> Dataset:
    rng = np.random.default_rng(0)
    n = 100
    X = pd.DataFrame({
        "x": rng.normal(size=n),
        "k": rng.integers(0, 3, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "flag": rng.choice([True, False], n),
        "when": pd.date_range("2024-01-01", periods=n, freq="D"),
    })
    X.loc[:9, "x"] = np.nan  # 10 % missing
    X.loc[:24, "colour"] = None  # 25 % missing
    y = pd.Series(["a"] * 75 + ["b"] * 25, name="label")
    return Dataset("mixed", X, y, "label")


def test_profile_mixed_classification(mixed: Dataset) -> None:
    card = DatasetCard.profile(mixed, "binary")
    assert (card.n_rows, card.n_features, card.n_numeric, card.n_categorical) == (100, 5, 2, 3)
    kinds = {c.name: c.kind for c in card.columns}
    assert kinds == {"x": "numeric", "k": "numeric", "colour": "categorical", "flag": "boolean", "when": "datetime"}
    missing = {c.name: c.missing for c in card.columns}
    assert missing == {"x": 0.1, "k": 0.0, "colour": 0.25, "flag": 0.0, "when": 0.0}
    assert card.missing_fraction == pytest.approx(35 / 500)
    assert {c.name: c.n_unique for c in card.columns}["colour"] == 3
    assert card.class_balance == {"a": 0.75, "b": 0.25}
    assert card.target_stats is None
    meta = card.meta_features
    assert meta["n_classes"] == 2
    assert meta["imbalance_ratio"] == pytest.approx(3.0)
    assert meta["class_entropy"] == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)), abs=1e-5)
    assert meta["log_rows"] == pytest.approx(2.0)
    assert meta["numeric_share"] == pytest.approx(0.4)
    assert meta["missing_fraction"] == pytest.approx(0.07)

    text = card.to_text()
    assert "binary task, target 'label'" in text and "Rows: 100; features: 5" in text
    assert "a: 75.0%" in text and "b: 25.0%" in text
    assert "colour (categorical, 25% missing)" in text


def test_profile_regression() -> None:
    data = load_dataset("sklearn:diabetes")
    card = DatasetCard.profile(data, "regression")
    assert card.class_balance is None and card.target_stats is not None
    assert card.target_stats["mean"] == pytest.approx(float(data.y.mean()), rel=1e-5)
    assert card.target_stats["min"] == data.y.min() and card.target_stats["max"] == data.y.max()
    assert "target_skew" in card.meta_features and "n_classes" not in card.meta_features
    assert card.missing_fraction == 0
    assert "Target: mean" in card.to_text()


def test_profile_text_truncates_many_columns() -> None:
    data = load_dataset("sklearn:digits")
    card = DatasetCard.profile(data, "multiclass")
    assert card.n_features == 64 and len(card.class_balance or {}) == 10
    assert "… and 49 more" in card.to_text(max_columns=15)


def test_profile_round_trips_and_is_finite(mixed: Dataset) -> None:
    card = DatasetCard.profile(mixed, "binary")
    assert DatasetCard.model_validate_json(card.model_dump_json()) == card
    assert all(np.isfinite(v) for v in card.meta_features.values())


def _texts(n: int, words: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    vocab = ["model", "data", "tune", "search", "trial", "score", "fold", "seed"]
    text = [" ".join(rng.choice(vocab, size=words)) for _ in range(n)]
    return Dataset("texts", pd.DataFrame({"text": text}), pd.Series(rng.integers(0, 2, n), name="y"), "y")


def test_text_and_image_cards_describe_the_data_and_key_the_memory() -> None:
    from hyperpilot.memory.similarity import meta_similarity

    short, longer = (DatasetCard.profile(_texts(200, w, 0), "binary", text_column="text") for w in (12, 20))
    assert short.text == {"mean_chars": pytest.approx(short.text["mean_chars"]), "median_words": 12.0,  # type: ignore[index]
                          "p95_words": 12.0, "max_words": 12.0}
    assert short.columns[0].kind == "text" and "Text column 'text': median 12 words" in short.to_text()
    digits = load_dataset("sklearn:digits")
    image = DatasetCard.profile(digits, "multiclass", image_shape=(1, 8, 8))
    assert image.image_shape == [1, 8, 8] and "Images: 1×8×8" in image.to_text()
    tabular = DatasetCard.profile(digits, "multiclass")
    assert tabular.text is None and tabular.image_shape is None and "log_image_pixels" not in tabular.meta_features
    # a text task is nearer another text task than a table; an image task nearer an image task
    assert meta_similarity(short.meta_features, longer.meta_features) > meta_similarity(short.meta_features, tabular.meta_features)
    assert meta_similarity(image.meta_features, image.meta_features) > meta_similarity(image.meta_features, tabular.meta_features)
