"""hyperpilot inside a user's own Optuna study: `warm_start` and `HyperpilotSampler`
(real Optuna, real scikit-learn objectives, real chromadb memory in a temp dir)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from sklearn.svm import SVC

from hyperpilot.cards import get_model_card
from hyperpilot.errors import TaskError
from hyperpilot.integrations import HyperpilotSampler, fit_value, warm_start
from hyperpilot.integrations.optuna import CannotMap
from hyperpilot.memory import Memory, StudyEntry
from hyperpilot.memory.embed import HashEmbedder

pytest.importorskip("chromadb")
X, Y = load_iris(return_X_y=True)
SVM = get_model_card("svm")


def _svc_objective(trial: optuna.Trial) -> float:
    """A user's objective with their own names: `cost` (the card's C), `svc__gamma`
    (matched by name) and `shrinking` (no card counterpart: the inner sampler's)."""
    C = trial.suggest_float("cost", 1e-2, 50.0, log=True)
    gamma = trial.suggest_float("svc__gamma", 1e-4, 1.0, log=True)
    shrinking = trial.suggest_categorical("shrinking", [True, False])
    return float(cross_val_score(SVC(C=C, gamma=gamma, shrinking=shrinking), X, Y, cv=3).mean())


def _remembered(memory: Memory, best: dict[str, float]) -> None:
    """A past svm study on similar data in the memory (iris' real dataset card: the memory
    ignores studies much less similar than that, `memory.transfer.MIN_SIMILARITY`)."""
    from hyperpilot.cards import DatasetCard
    from hyperpilot.data import load_dataset
    from hyperpilot.memory.retrieve import study_text

    card = DatasetCard.profile(load_dataset("sklearn:iris"), "multiclass")
    memory.add_studies([StudyEntry(
        id="past-iris/svm", dataset="sklearn:iris", task_type="multiclass", model="svm", family=SVM.family,
        metric="accuracy", direction="maximize", card_text=study_text(card, "multiclass", "accuracy"),
        meta_features=dict(card.meta_features), best_config=best, best_score=0.97, top_configs=[best],
        n_trials=10)])


def test_fit_value_casts_and_clips_into_the_users_distributions() -> None:
    assert fit_value(100.0, FloatDistribution(0.01, 50.0, log=True)) == 50.0
    assert fit_value("0.5", FloatDistribution(0.0, 1.0, step=0.25)) == 0.5
    assert fit_value(0.6, FloatDistribution(0.0, 1.0, step=0.25)) == 0.5
    assert fit_value(7.6, IntDistribution(1, 30)) == 8 and isinstance(fit_value(7.6, IntDistribution(1, 30)), int)
    assert fit_value(7, IntDistribution(1, 31, step=5)) == 6
    assert fit_value(13, CategoricalDistribution([1, 10, 100])) == 10  # the nearest number (log scale)
    assert fit_value("rbf", CategoricalDistribution(["linear", "rbf"])) == "rbf"
    with pytest.raises(CannotMap, match="not a number"):
        fit_value("auto", FloatDistribution(0.0, 1.0))
    with pytest.raises(CannotMap, match="not one of"):
        fit_value("poly", CategoricalDistribution(["linear", "rbf"]))


def test_warm_start_enqueues_default_then_memory_in_the_users_names(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    _remembered(memory, {"C": 100.0, "gamma": 5e-4, "tol": 1e-3})
    study = optuna.create_study(direction="maximize")
    dists = {"cost": FloatDistribution(1e-2, 50.0, log=True), "svc__gamma": FloatDistribution(1e-4, 1.0, log=True),
             "shrinking": CategoricalDistribution([True, False])}
    enqueued = warm_start(study, "svm", "sklearn:wine", memory=memory, params={"cost": "C"}, distributions=dists)
    default = SVM.default_config()
    assert enqueued == [{"cost": default["C"], "svc__gamma": default["gamma"]},
                        {"cost": 50.0, "svc__gamma": 5e-4}]  # the neighbour's C=100 clipped into the user's range
    study.optimize(_svc_objective, n_trials=3)
    first, second, third = study.trials
    assert first.params["cost"] == default["C"] and first.user_attrs["source"] == "default"
    assert second.params == {**enqueued[1], "shrinking": second.params["shrinking"]}
    assert second.user_attrs["source"] == "memory" and "past-iris/svm" in second.user_attrs["rationale"]
    assert "source" not in third.user_attrs and all(t.state.name == "COMPLETE" for t in study.trials)
    assert memory.count() == (1, 0)  # warm_start only reads the memory


def test_warm_start_with_an_llm_enqueues_its_proposals_in_the_users_names() -> None:
    from hyperpilot.agent.llm import ScriptedLLM

    design = ('{"configs": [{"model": "svm", "C": 8.0, "gamma": 0.0251, "tol": 0.00251, "reason": "middle of the grid"},'
              ' {"model": "svm", "C": 2050.0, "gamma": 1.0, "tol": 0.00251, "reason": "a sharp fit"}]}')
    llm = ScriptedLLM([design])
    study = optuna.create_study(direction="maximize")
    dists = {"cost": FloatDistribution(1e-2, 50.0, log=True), "svc__gamma": FloatDistribution(1e-4, 1.0, log=True),
             "shrinking": CategoricalDistribution([True, False])}
    enqueued = warm_start(study, "svm", "sklearn:iris", memory=None, llm=llm, params={"cost": "C"}, distributions=dists)
    default = SVM.default_config()
    assert enqueued == [{"cost": default["C"], "svc__gamma": default["gamma"]}, {"cost": 8.0, "svc__gamma": 0.0251},
                        {"cost": 50.0, "svc__gamma": 1.0}]  # C=2050 clipped into the user's range
    (messages, schema), = llm.requests  # one planner call, which saw the data and the default already planned
    assert schema is not None and "sklearn:iris" in messages[-1]["content"] and "C=1 gamma=0.1" in messages[-1]["content"]
    assert [t.user_attrs["source"] for t in study.trials] == ["default", "llm", "llm"]
    assert [t.user_attrs.get("rationale") for t in study.trials[1:]] == ["middle of the grid", "a sharp fit"]
    study.optimize(_svc_objective, n_trials=3)
    assert [t.params["cost"] for t in study.trials] == [default["C"], 8.0, 50.0]


def test_warm_start_without_data_or_trials_uses_the_card_default_under_matching_names() -> None:
    study = optuna.create_study()
    assert warm_start(study, "svm", memory=None) == [SVM.default_config()]  # the card's own names and ranges
    assert study.trials[0].state.name == "WAITING"


def test_sampler_runs_a_plain_optimize_and_records_every_trial_in_the_memory(tmp_path: Path) -> None:
    memory = Memory(tmp_path / "mem", embedder=HashEmbedder())
    sampler = HyperpilotSampler("svm", "sklearn:iris", memory=memory, params={"cost": "C"}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name="user-iris")
    study.optimize(_svc_objective, n_trials=8)
    default = SVM.default_config()
    trials = study.trials
    assert len(trials) == 8 and all(t.state.name == "COMPLETE" for t in trials)
    assert (trials[0].params["cost"], trials[0].params["svc__gamma"]) == (default["C"], default["gamma"])
    assert trials[0].user_attrs["source"] == "default"
    assert [t.user_attrs.get("source", "bo") for t in trials[1:]] == ["bo"] * 7  # an empty memory adds nothing
    assert len({(t.params["cost"], t.params["svc__gamma"]) for t in trials}) == 8  # TPE after the default
    stored = memory.trials("user-iris/svm")
    assert sorted(t.number for t in stored) == list(range(8))
    assert {t.number: t.score for t in stored} == {t.number: t.value for t in trials}
    assert set(stored[0].config) == {"C", "gamma"} and stored[0].source == "default"
    summary = memory.get_study("user-iris/svm")
    assert summary.n_trials == 8 and summary.best_score == pytest.approx(study.best_value)
    assert summary.best_config == {"C": study.best_params["cost"], "gamma": study.best_params["svc__gamma"]}

    # the next user study on similar data starts from this one's best config, after the default
    nxt = optuna.create_study(direction="maximize", study_name="user-wine", sampler=HyperpilotSampler(
        "svm", "sklearn:wine", memory=memory, params={"cost": "C"}, seed=1))
    nxt.optimize(_svc_objective, n_trials=3)
    assert [t.user_attrs.get("source", "bo") for t in nxt.trials] == ["default", "memory", "bo"]
    best = study.best_params
    assert (nxt.trials[1].params["cost"], nxt.trials[1].params["svc__gamma"]) == pytest.approx(
        (best["cost"], best["svc__gamma"]))
    assert len(memory.trials("user-wine/svm")) == 3


def test_a_trial_the_user_enqueued_runs_as_enqueued_and_the_default_comes_next() -> None:
    study = optuna.create_study(direction="maximize", sampler=HyperpilotSampler("svm", memory=None, seed=0))
    study.enqueue_trial({"cost": 3.0, "svc__gamma": 0.01, "shrinking": True})
    study.optimize(_svc_objective, n_trials=2)
    assert study.trials[0].params == {"cost": 3.0, "svc__gamma": 0.01, "shrinking": True}
    assert study.trials[1].user_attrs["source"] == "default"
    assert study.trials[1].params["svc__gamma"] == SVM.default_config()["gamma"]


def test_bad_mappings_are_one_clear_line() -> None:
    cases = [
        (lambda: HyperpilotSampler("svm", memory=None, params={"cost": "nonexistent"}),
         "params maps 'cost' to 'nonexistent', which model card 'svm' does not have; it has C, gamma, tol"),
        (lambda: warm_start(optuna.create_study(), "svm", memory=None, params={"penalty": "C"},
                            distributions={"cost": FloatDistribution(0.1, 10.0)}),
         "params names 'penalty', but the study has no such parameter; it has cost"),
        (lambda: warm_start(optuna.create_study(), "svm", memory=None, distributions={"alpha": FloatDistribution(0.1, 1.0)}),
         "none of the study's parameters (alpha) match model card 'svm'"),
        (lambda: HyperpilotSampler("svm"), "warm-starting from the memory or an LLM needs data="),
        (lambda: HyperpilotSampler("no_such_model", memory=None), "no_such_model"),
    ]
    for make, message in cases:
        with pytest.raises(Exception) as info:
            make()
        assert isinstance(info.value, TaskError) or type(info.value).__module__ == "hyperpilot.errors"
        assert message in str(info.value) and "\n" not in str(info.value)
