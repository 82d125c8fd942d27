"""SearchSpace: parameters check themselves, round-trip through JSON, become Optuna
distributions, validate (cast and clip) configs and sample valid, reproducible configs."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from hyperpilot.errors import HyperpilotError, SpaceError
from hyperpilot.space import CategoricalParam, FloatParam, IntParam, SearchSpace


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace(
        params=[
            IntParam(name="max_depth", low=1, high=10, default=3, description="tree depth"),
            FloatParam(name="lr", low=1e-3, high=1.0, log=True),
            FloatParam(name="subsample", low=0.5, high=1.0),
            IntParam(name="n_estimators", low=10, high=1000, log=True),
            CategoricalParam(name="bootstrap", choices=[True, False]),
            CategoricalParam(name="criterion", choices=["gini", "entropy", None, 3, 0.5], default="entropy"),
        ]
    )


# --- construction checks itself ----------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: IntParam(name="max_depth", low=5, high=1), "low=5 > high=1 for 'max_depth'"),
        (lambda: FloatParam(name="lr", low=1.0, high=0.1), "low=1.0 > high=0.1 for 'lr'"),
        (lambda: FloatParam(name="lr", low=0.0, high=1.0, log=True), "low=0.0 of log-scaled 'lr' must be > 0"),
        (lambda: IntParam(name="n", low=-1, high=10, log=True), "low=-1 of log-scaled 'n' must be > 0"),
        (lambda: FloatParam(name="lr", low=0.1, high=1.0, default=3.0), "default=3.0 of 'lr' is outside [0.1, 1.0]"),
        (lambda: IntParam(name="depth", low=1, high=5, default=0), "default=0 of 'depth' is outside [1, 5]"),
        (lambda: FloatParam(name="x", low=float("-inf"), high=1.0), "must be finite"),
        (lambda: FloatParam(name="x", low=float("nan"), high=1.0), "must be finite"),
        (lambda: CategoricalParam(name="kernel", choices=[]), "'kernel' needs at least one choice"),
        (lambda: CategoricalParam(name="kernel", choices=["rbf", "rbf"]), "'kernel' has duplicate choices ['rbf']"),
        # Optuna tells choices apart by ==: 1, 1.0 and True would collapse into one
        (lambda: CategoricalParam(name="k", choices=[1, 1.0]), "'k' has duplicate choices"),
        (lambda: CategoricalParam(name="k", choices=[1, True]), "'k' has duplicate choices"),
        (lambda: CategoricalParam(name="k", choices=[0.5, float("nan")]), "not finite"),
        (lambda: CategoricalParam(name="kernel", choices=["rbf"], default="poly"), "default='poly' of 'kernel' is not one of ['rbf']"),
        (lambda: IntParam(name="depth", low=1.5, high=5), "invalid IntParam 'depth': low"),
        (lambda: CategoricalParam(name="c", choices=[[1, 2]]), "invalid CategoricalParam 'c'"),
    ],
)
def test_bad_param_raises_space_error_naming_the_value(make, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        make()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_user_errors_are_not_value_errors() -> None:
    """pydantic would swallow a ValueError into a many-line ValidationError."""
    assert not issubclass(SpaceError, ValueError)
    assert issubclass(SpaceError, HyperpilotError)
    with pytest.raises(SpaceError) as info:
        SearchSpace(params=[{"name": "a", "type": "int", "low": 5, "high": 1}])
    assert str(info.value) == "low=5 > high=1 for 'a'"


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(SpaceError, match=r"names \['a'\] more than once"):
        SearchSpace(params=[IntParam(name="a", low=1, high=2), FloatParam(name="a", low=0.0, high=1.0)])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"depth": {"type": "int", "low": 5, "high": 1}}, "low=5 > high=1 for 'depth'"),
        ({"depth": {"type": "weird", "low": 1, "high": 5}}, "invalid search space"),
        ({"depth": {"type": "int", "low": "x", "high": 5}}, "'depth'"),
        ({"depth": {"type": "int", "low": 1, "high": 5, "step": 2}}, "step"),
        ({"depth": {"low": 1, "high": 5}}, "invalid search space"),
    ],
)
def test_from_dict_errors_are_one_line_space_errors(spec: dict, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_json_space_is_a_space_error() -> None:
    text = json.dumps({"params": [{"name": "a", "type": "categorical", "choices": ["x", "x"]}]})
    with pytest.raises(SpaceError, match="duplicate"):
        SearchSpace.model_validate_json(text)
    with pytest.raises(SpaceError, match="invalid search space"):
        SearchSpace.model_validate_json(json.dumps({"params": [{"name": "a", "type": "nope"}]}))


def test_params_are_frozen(space: SearchSpace) -> None:
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        space["max_depth"].low = 7  # type: ignore[misc]


# --- JSON round trip -----------------------------------------------------------------------


def test_json_round_trip(space: SearchSpace) -> None:
    text = space.model_dump_json()
    back = SearchSpace.model_validate_json(text)
    assert back == space
    assert [type(p) for p in back.params] == [type(p) for p in space.params]
    assert back["criterion"].choices == ["gini", "entropy", None, 3, 0.5]  # type: ignore[union-attr]
    assert type(back["criterion"].choices[3]) is int  # type: ignore[union-attr]
    assert back["bootstrap"].choices == [True, False]  # type: ignore[union-attr]


def test_dict_round_trip(space: SearchSpace) -> None:
    spec = space.to_dict()
    assert set(spec) == set(space.names)
    assert spec["lr"]["log"] is True and spec["lr"]["type"] == "float"
    assert SearchSpace.from_dict(spec) == space
    assert SearchSpace.from_dict(json.loads(json.dumps(spec))) == space


def test_names_len_and_lookup(space: SearchSpace) -> None:
    assert space.names == ["max_depth", "lr", "subsample", "n_estimators", "bootstrap", "criterion"]
    assert len(space) == 6
    assert space["lr"].log is True  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        space["nope"]


# --- Optuna distributions ------------------------------------------------------------------


def test_optuna_distributions(space: SearchSpace) -> None:
    d = space.distributions()
    assert list(d) == space.names
    assert d["max_depth"] == optuna.distributions.IntDistribution(1, 10)
    assert d["lr"] == optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    assert d["n_estimators"] == optuna.distributions.IntDistribution(10, 1000, log=True)
    assert d["subsample"] == optuna.distributions.FloatDistribution(0.5, 1.0)
    assert d["bootstrap"] == optuna.distributions.CategoricalDistribution([True, False])
    assert d["criterion"] == optuna.distributions.CategoricalDistribution(["gini", "entropy", None, 3, 0.5])


def test_optuna_can_sample_the_distributions(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    dists = space.distributions()
    for _ in range(10):
        trial = study.ask(dists)
        assert space.validate(trial.params) == trial.params
        study.tell(trial, 0.0)
    # and a validated config can be enqueued as-is
    config = space.validate({"max_depth": 2.6, "criterion": "none"})
    study.enqueue_trial(config)
    trial = study.ask(dists)
    assert trial.params == config


# --- validate: cast and clip -----------------------------------------------------------------


def test_validate_casts_and_clips(space: SearchSpace) -> None:
    out = space.validate(
        {"max_depth": 3.7, "lr": 5, "subsample": "0.75", "n_estimators": -3, "bootstrap": "true", "criterion": "0.5"}
    )
    assert out == {"max_depth": 4, "lr": 1.0, "subsample": 0.75, "n_estimators": 10, "bootstrap": True, "criterion": 0.5}
    assert type(out["max_depth"]) is int and type(out["lr"]) is float and out["bootstrap"] is True


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("max_depth", "3.7", 4),
        ("max_depth", 1e9, 10),
        ("max_depth", np.int64(5), 5),
        ("max_depth", 2**80, 10),
        ("lr", np.float32(0.5), 0.5),
        ("lr", 1e-9, 1e-3),
        ("subsample", " 0.6 ", 0.6),
        ("bootstrap", "False", False),
        ("bootstrap", False, False),
        ("criterion", "GINI", "gini"),
        ("criterion", "None", None),
        ("criterion", None, None),
        ("criterion", 3.0, 3),  # a JSON 3.0 for the int choice 3
        ("criterion", "3", 3),
        ("criterion", np.int64(3), 3),
    ],
)
def test_validate_single_values(space: SearchSpace, name: str, value: object, expected: object) -> None:
    out = space.validate({name: value})[name]
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nope": 1}, "unknown parameter(s) ['nope']"),
        ({"max_depth": "deep"}, "'max_depth' must be a number, got 'deep'"),
        ({"max_depth": None}, "'max_depth' must be a number"),
        ({"max_depth": True}, "'max_depth' must be a number, got True"),
        ({"max_depth": [3]}, "'max_depth' must be a number"),
        ({"lr": float("nan")}, "'lr' must be a finite number"),
        ({"lr": "inf"}, "'lr' must be a finite number"),
        ({"bootstrap": "maybe"}, "'bootstrap' must be one of [True, False], got 'maybe'"),
        ({"bootstrap": 1}, "'bootstrap' must be one of"),  # 1 is not True for a choice
        ({"criterion": 4}, "'criterion' must be one of"),
    ],
)
def test_validate_rejects(space: SearchSpace, config: dict, message: str) -> None:
    with pytest.raises(SpaceError) as info:
        space.validate(config)
    assert message in str(info.value)


def test_validate_rejects_non_dict(space: SearchSpace) -> None:
    with pytest.raises(SpaceError, match="JSON object"):
        space.validate([("max_depth", 3)])  # type: ignore[arg-type]


def test_validate_fills_defaults_or_demands_everything(space: SearchSpace) -> None:
    out = space.validate({"lr": 0.1})
    assert out["max_depth"] == 3  # its default
    assert out["criterion"] == "entropy"  # its default
    assert out["bootstrap"] is True  # the first choice
    assert out["subsample"] == pytest.approx(0.75)  # the middle of the range
    assert out["n_estimators"] == 100  # the geometric middle of a log range
    assert list(out) == space.names
    with pytest.raises(SpaceError, match=r"missing parameter\(s\)"):
        space.validate({"lr": 0.1}, fill=False)


def test_defaults_validate(space: SearchSpace) -> None:
    defaults = space.defaults()
    assert space.validate(defaults, fill=False) == defaults


def test_validate_is_idempotent(space: SearchSpace) -> None:
    once = space.validate({"max_depth": 9.4, "lr": "0.01", "criterion": "3"})
    assert space.validate(once) == once


# --- sample ------------------------------------------------------------------------------


def test_sample_always_validates(space: SearchSpace) -> None:
    for seed in range(500):
        config = space.sample(np.random.default_rng(seed))
        assert list(config) == space.names
        assert space.validate(config, fill=False) == config


def test_sample_covers_the_range(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(400)]
    depths = {c["max_depth"] for c in configs}
    assert depths == set(range(1, 11))
    assert {c["bootstrap"] for c in configs} == {True, False}
    assert {repr(c["criterion"]) for c in configs} == {"'gini'", "'entropy'", "None", "3", "0.5"}
    lrs = np.array([c["lr"] for c in configs])
    assert lrs.min() >= 1e-3 and lrs.max() <= 1.0
    assert (lrs < 0.01).mean() > 0.2  # log-uniform: a third of the mass below 0.01
    n_est = np.array([c["n_estimators"] for c in configs])
    assert n_est.min() >= 10 and n_est.max() <= 1000 and (n_est < 100).mean() > 0.3


def test_sample_is_deterministic_per_seed(space: SearchSpace) -> None:
    a = [space.sample(np.random.default_rng(42)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(42)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(42)
    seq1 = [space.sample(rng) for _ in range(5)]
    rng = np.random.default_rng(42)
    seq2 = [space.sample(rng) for _ in range(5)]
    assert seq1 == seq2
    assert space.sample(np.random.default_rng(1)) != space.sample(np.random.default_rng(2))


def test_tight_log_ranges_sample_inside() -> None:
    """exp(log(x)) can miss x by an ulp; a sample must still lie inside the range."""
    s = SearchSpace(params=[FloatParam(name="x", low=0.1, high=0.1 + 1e-15, log=True),
                            FloatParam(name="y", low=3e-7, high=3e-7, log=True),
                            IntParam(name="n", low=1, high=2, log=True)])
    for seed in range(300):
        c = s.sample(np.random.default_rng(seed))
        assert s.validate(c) == c


def test_grid_values_fit() -> None:
    p = FloatParam(name="lr", low=1e-4, high=1.0, log=True)
    grid = p.grid(5)
    assert grid == sorted(grid) and len(grid) == 5
    assert grid[0] == pytest.approx(1e-4) and grid[-1] == pytest.approx(1.0)
    assert IntParam(name="n", low=1, high=100, log=True).grid(5) == [1, 3, 10, 32, 100]
    assert CategoricalParam(name="c", choices=["a", "b"]).grid(9) == ["a", "b"]
