"""Planner decisions with the scripted model: every decision, every retry and fallback path
(garbage, out of range, duplicate, timeout, exception), and the hybrid policy in a solve."""

from __future__ import annotations

import json
import logging
from typing import Any

import optuna
import pytest

from hyperpilot import Assistant, Task, studies
from hyperpilot.agent.llm import LLMTimeout, LLMUnavailable, ScriptedLLM
from hyperpilot.agent.planner import AnswerError, Example, Planner, Proposal, config_schema
from hyperpilot.agent.policy import DEFAULT_RATE, LLMProposer
from hyperpilot.cards import DatasetCard, ModelCard, get_model_card
from hyperpilot.core.loop import StudyLoop, TrialHandle
from hyperpilot.core.proposer import CardDefaults, StudyContext, config_key
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Outcome
from hyperpilot.data import load_dataset
from hyperpilot.report import accounting, accounting_rows, source_ranks

# the svm card with fixed ranges (Bayesmark's), so that the numbers below are grid values
# whatever range the bundled card has
SVM = ModelCard.model_validate({**get_model_card("svm").model_dump(exclude={"space", "default"}), "space": {
    "C": {"type": "float", "low": 1.0, "high": 1000.0, "log": True, "description": "Inverse regularisation."},
    "gamma": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True, "description": "RBF kernel width."},
    "tol": {"type": "float", "low": 1e-5, "high": 0.1, "log": True, "description": "Stopping tolerance."},
}, "default": {"C": 10.0, "gamma": 1e-3, "tol": 1e-3}})
SPACE = StudySpace([SVM])
VARS = {"task": Task(data="sklearn:iris"), "metric": "accuracy", "direction": "maximize",
        "dataset_card": "Dataset: iris", "examples": [], "planned": ["svm C=10 gamma=0.001 tol=0.001"]}
NEXT_VARS = {"metric": "accuracy", "direction": "maximize", "history": ["0.95 | 10,0.001,0.001"], "n_done": 1,
             "columns": ["C", "gamma", "tol"]}


def svm(C: Any = 63.1, gamma: Any = 0.000251, tol: Any = 0.000398, reason: str = "because") -> dict[str, Any]:
    return {"model": "svm", "C": C, "gamma": gamma, "tol": tol, "reason": reason}


def design(*configs: dict[str, Any]) -> str:
    return json.dumps({"configs": list(configs)})


# -- initial design ---------------------------------------------------------------------
def test_initial_design_offers_grid_values_as_enums_and_returns_proposals() -> None:
    llm = ScriptedLLM([design(svm(), svm(C=251.0))])
    proposals = Planner(llm).initial_design(SPACE, VARS, 2, tried=set())
    assert [p.config["C"] for p in proposals] == [63.1, 251.0]
    assert proposals[0].rationale == "because" and proposals[0].origin == "llm"
    schema = llm.requests[0][1]
    c = schema["$defs"]["svm_config"]["properties"]["C"] if "$defs" in schema else None
    assert c is not None and c["enum"] == SVM.space["C"].grid(6)  # numbers are offered, not invented
    assert "minimum" not in json.dumps(schema)


@pytest.mark.parametrize("bad, error", [
    ("this is not JSON", "Invalid JSON"),
    (design(svm(C=5000.0), svm()), "Input should be"),                       # out of range: not an offered value
    (design(svm(), svm()).replace('"svm"', '"knn"'), "Input should be 'svm'"),  # unknown model
])
def test_invalid_answer_is_fed_back_and_retried(bad: str, error: str) -> None:
    llm = ScriptedLLM([bad, design(svm(), svm(C=251.0))])
    planner = Planner(llm)
    proposals = planner.initial_design(SPACE, VARS, 2, tried=set())
    assert len(proposals) == 2
    retry = llm.requests[1][0]
    assert retry[-2] == {"role": "assistant", "content": bad}
    assert "not valid" in retry[-1]["content"] and error in retry[-1]["content"]
    assert planner.stats.invalid == 1 and planner.stats.valid == 1 and planner.stats.calls == 2


def test_duplicates_are_dropped_and_all_duplicates_retried() -> None:
    tried = {config_key("svm", {"C": 63.1, "gamma": 0.000251, "tol": 0.000398})}
    llm = ScriptedLLM([design(svm(), svm()), design(svm(), svm(C=251.0))])
    planner = Planner(llm)
    proposals = planner.initial_design(SPACE, VARS, 2, tried=tried)
    assert len(proposals) == 1 and proposals[0].config["C"] == 251.0
    assert "already tried" in llm.requests[1][0][-1]["content"]


def test_retry_budget_spent_raises_with_the_transcript() -> None:
    llm = ScriptedLLM(["garbage"] * 3)
    planner = Planner(llm, retries=2)
    with pytest.raises(AnswerError, match="in 3 tries") as info:
        planner.initial_design(SPACE, VARS, 2, tried=set())
    assert isinstance(info.value.__cause__, Exception)
    assert sum(m["role"] == "assistant" for m in info.value.transcript) == 3
    assert planner.stats.invalid == 3 and planner.stats.calls == 3


def test_capable_model_writes_numbers_which_are_clipped() -> None:
    llm = ScriptedLLM([design(svm(C=5000.0, gamma=1e-5))], free_proposals=True)
    planner = Planner(llm)
    (proposal,) = planner.initial_design(SPACE, VARS, 1, tried=set())
    assert proposal.config["C"] == 1000.0 and proposal.config["gamma"] == 1e-4
    assert planner.stats.clipped == 1


@pytest.mark.parametrize("failure, stat", [
    (LLMTimeout("too slow"), "timeouts"), (LLMUnavailable("down"), "unavailable"), (RuntimeError("bug"), "unavailable"),
])
def test_backend_failures_are_not_retried_and_keep_their_type(failure: Exception, stat: str) -> None:
    planner = Planner(ScriptedLLM([failure, design(svm(), svm())]))
    expected = LLMTimeout if isinstance(failure, LLMTimeout) else LLMUnavailable
    with pytest.raises(expected):
        planner.initial_design(SPACE, VARS, 2, tried=set())
    assert getattr(planner.stats, stat) == 1 and planner.stats.calls == 1


# -- next candidates --------------------------------------------------------------------
CANDIDATES = [Proposal("svm", {"C": 2.0, "gamma": 1e-4, "tol": 1e-3}, origin="bo"),
              Proposal("svm", {"C": 500.0, "gamma": 5e-4, "tol": 1e-3}, origin="memory")]


def test_pick_is_one_letter_naming_a_candidate_and_no_free_text() -> None:
    llm = ScriptedLLM([json.dumps({"choice": "B"})])
    proposal = Planner(llm).pick(NEXT_VARS, CANDIDATES)
    assert proposal.config["C"] == 500.0 and proposal.origin == "memory" and proposal.rationale == ""
    messages, schema = llm.requests[0]
    assert schema == {"type": "object", "properties": {"choice": {"enum": ["A", "B"]}}, "required": ["choice"]}
    assert "A: 2,.0001,.001" in messages[-1]["content"] and "B: 500,.0005,.001" in messages[-1]["content"]
    several = ScriptedLLM([json.dumps({"choice": "A"})])
    Planner(several).pick({**NEXT_VARS, "columns": []}, CANDIDATES)  # several models: `model name=value`
    assert "A: svm C=2 gamma=0.0001 tol=0.001" in several.requests[0][0][-1]["content"]


@pytest.mark.parametrize("answer", ['{"choice": "C"}', "B", '{"choice": 1}'])
def test_an_answer_that_is_not_a_letter_is_invalid_and_not_retried(answer: str) -> None:
    llm = ScriptedLLM([answer, json.dumps({"choice": "A"})])
    planner = Planner(llm)
    with pytest.raises(AnswerError, match="not one of the letters AB"):
        planner.pick(NEXT_VARS, CANDIDATES)
    assert planner.stats.invalid == 1 and len(llm.requests) == 1


def test_picking_needs_two_candidates() -> None:
    with pytest.raises(AnswerError, match="fewer than two"):
        Planner(ScriptedLLM()).pick(NEXT_VARS, CANDIDATES[:1])


def test_a_capable_model_picks_among_the_candidates_too() -> None:
    llm = ScriptedLLM([json.dumps({"choice": "A"})], free_proposals=True)
    assert Planner(llm).pick(NEXT_VARS, CANDIDATES).config == CANDIDATES[0].config


def test_config_schema_reserves_planner_field_names() -> None:
    assert set(config_schema(SVM, offered=True).model_fields) == {"model", "C", "gamma", "tol", "reason"}


# -- the hybrid policy ------------------------------------------------------------------
def _solve(llm: ScriptedLLM, n: int = 8, rate: float = 0.5, **kw: Any) -> tuple[Any, optuna.Study]:
    """A real `Assistant.solve` (SQLite study, CV, report)."""
    assistant = Assistant(proposers=[LLMProposer(llm, rate=rate, **{"n_initial": 2, **kw})], llm="none")
    result = assistant.solve(Task(data="sklearn:iris", models=["knn"], n_trials=n, cv_folds=2))
    return result, studies.load_study(result.study_name)


def _knn_objective(handle: TrialHandle) -> Outcome:
    """A made-up objective of the config (no training): best at n_neighbors=13, p=2."""
    config = handle.config
    return Outcome(1.0 / (1 + abs(config["n_neighbors"] - 13)) + 0.01 * config["p"], 0.0)


def _drive(llm: ScriptedLLM, n: int = 8, rate: float = 0.5, **kw: Any) -> optuna.Study:
    """The core loop (`StudyLoop`, card defaults + the LLM proposer + BO) on an in-memory
    study with a made-up objective: fast policy tests."""
    task = Task(data="sklearn:iris", models=["knn"], n_trials=n, cv_folds=2, study_name="t").resolved("multiclass")
    study = optuna.create_study(direction="maximize", sampler=studies.make_sampler(task, 0))
    space = StudySpace([get_model_card("knn")])
    data = load_dataset("sklearn:iris")
    ctx = StudyContext(task, study, space, DatasetCard.profile(data, "multiclass"))
    proposer = LLMProposer(llm, rate=rate, **{"n_initial": 2, **kw})
    StudyLoop(ctx, _knn_objective, [CardDefaults(), proposer]).run(n)
    assert len(study.trials) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    return study


def _sources(study: optuna.Study) -> list[str]:
    return [t.user_attrs.get("source", "bo") for t in study.trials]  # a BO trial has no source attribute


def test_hybrid_policy_in_a_real_solve() -> None:
    result, study = _solve(ScriptedLLM(), n=8, rate=0.5)
    assert list(result.trials.source) == ["default", "llm", "llm", "bo", "llm", "bo", "llm", "bo"]
    llm_trial = next(t for t in study.trials if t.user_attrs.get("source") == "llm")
    assert llm_trial.user_attrs["rationale"] and llm_trial.user_attrs["llm_origin"] == "llm"
    picks = [t for t in study.trials[3:] if t.user_attrs.get("source") == "llm"]
    assert picks and all(t.user_attrs["llm_origin"] == "bo" and "rationale" not in t.user_attrs for t in picks)
    info = accounting(study)
    assert info is not None and info["backend"] == "scripted" and info["used"] == 4 and info["proposed"] == 4
    assert info["stats"]["calls"] == 3 and "summary" not in info  # 1 initial design + 2 picks, no summary call and set(info["ranks"]) == {"default", "llm", "bo"}
    assert info["facts"].startswith("importance: ") and "n_neighbors" in info["facts"]
    assert "## LLM planner" in result.report_path.read_text()
    assert json.loads((result.report_path.parent / "report.json").read_text())["llm"]["used"] == 4
    # resuming: no second initial design; the policy goes on at its rate
    again = Assistant(proposers=[LLMProposer(ScriptedLLM(), rate=0.0, summarise=False)], llm="none")
    assert list(again.resume(result.study_name, n_trials=10).trials.source)[8:] == ["bo", "bo"]


def test_llm_replaces_bo_at_the_rate_evenly() -> None:
    study = _drive(ScriptedLLM(), n=12, rate=0.5)
    sources = _sources(study)
    assert sources[:3] == ["default", "llm", "llm"]  # card default, then the initial design (k=2)
    assert sources[3:] == ["bo", "llm"] * 4 + ["bo"]
    picked = [t.user_attrs["llm_origin"] for t in study.trials[3:] if t.user_attrs.get("source") == "llm"]
    assert set(picked) == {"bo"}  # only BO's own candidates
    assert study.user_attrs["llm"]["used"] == 6


def test_rate_zero_only_seeds_the_start() -> None:
    assert _sources(_drive(ScriptedLLM(), n=6, rate=0.0)) == ["default", "llm", "llm", "bo", "bo", "bo"]


def test_initial_design_by_default_only_for_models_that_propose_freely() -> None:
    picker = LLMProposer(ScriptedLLM(), rate=0.0)
    assert picker.n_initial is None
    assert _sources(_drive(ScriptedLLM(), n=4, rate=0.0, n_initial=None)) == ["default", "bo", "bo", "bo"]
    free = _drive(ScriptedLLM(free_proposals=True), n=4, rate=0.0, n_initial=None)
    assert _sources(free)[:2] == ["default", "llm"]  # (the scripted free answer repeats itself: deduplicated)


@pytest.mark.parametrize("script", [
    ["garbage"] * 50,                      # invalid every time
    [LLMTimeout("slow")] * 50,             # timeouts
    [RuntimeError("backend bug")] * 50,    # exceptions
    [LLMUnavailable("endpoint down")] * 50,
], ids=["garbage", "timeout", "exception", "unavailable"])
def test_every_llm_failure_falls_back_to_bo_and_the_study_goes_on(script: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hyperpilot.llm"):
        study = _drive(ScriptedLLM(script), n=8, rate=1.0)
    assert len(study.trials) == 8 and set(_sources(study)) == {"default", "bo"}
    info = accounting(study)
    assert info is not None and info["used"] == 0 and info["stats"]["fallbacks"] >= 1
    warnings = [r.getMessage() for r in caplog.records if "BO proposes instead" in r.getMessage()]
    assert len(warnings) == (0 if script[0] == "garbage" else 1)  # one warning per study, not per step
    if warnings:  # a slow model is said to be slow, not missing
        assert ("LLM too slow" in warnings[0]) == isinstance(script[0], LLMTimeout)


def test_slow_model_times_out_and_bo_goes_on() -> None:
    study = _drive(ScriptedLLM(delay=0.3), n=5, rate=1.0, timeout=0.05, summarise=False)
    assert set(_sources(study)) == {"default", "bo"} and study.user_attrs["llm"]["stats"]["timeouts"] >= 1


def test_unavailable_backend_cools_down_instead_of_being_called_every_step() -> None:
    llm = ScriptedLLM([LLMUnavailable("down")] * 50)
    _drive(llm, n=14, rate=1.0, summarise=False)
    assert len(llm.requests) < 6  # 1 initial design + a few after growing cool-downs, not 13


def test_memory_examples_go_to_the_initial_design_and_picks_stay_among_bo_candidates() -> None:
    example = Example(task="iris, accuracy", model="knn", config={"n_neighbors": 13, "weights": "uniform", "p": 1}, score=0.97)
    design = json.dumps({"configs": [{"model": "knn", "n_neighbors": 10, "weights": "uniform", "p": 2, "reason": "small k"}]})
    llm = ScriptedLLM([design])
    study = _drive(llm, n=5, rate=1.0, n_initial=1, summarise=False, examples=lambda ctx: [example])
    assert "Best configurations of similar past studies" in llm.requests[0][0][-1]["content"]
    assert "n_neighbors=13" not in llm.requests[1][0][-1]["content"]
    assert [t.user_attrs.get("llm_origin") for t in study.trials[2:]] == ["bo"] * 3


def test_the_candidates_are_bo_proposals_that_depend_only_on_the_seed_and_the_study() -> None:
    def choices(study: optuna.Study) -> list[dict[str, Any]]:
        return [t.params for t in study.trials]

    first, second = _drive(ScriptedLLM(), n=8, rate=0.5), _drive(ScriptedLLM(), n=8, rate=0.5)
    assert choices(first) == choices(second)


def test_source_ranks_and_rows() -> None:
    study = optuna.create_study(direction="maximize")
    for value, source in [(0.9, "bo"), (0.95, "llm"), (0.8, "bo"), (0.85, "llm")]:
        study.enqueue_trial({}, user_attrs={"source": source})
        study.optimize(lambda t, v=value: v, n_trials=1)
    ranks = source_ranks(study)
    assert ranks["llm"]["best"] == 0.95 and ranks["bo"]["mean_rank"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-3)
    rows = dict(accounting_rows({"backend": "scripted", "model": "m", "rate": 0.25, "proposed": 2, "used": 2,
                                 "stats": Planner(ScriptedLLM()).stats.to_dict(), "ranks": ranks}))
    assert "rank of llm trials" in rows and rows["LLM"].startswith("scripted")


def test_assistant_builds_the_llm_proposer_from_a_spec() -> None:
    def llm_proposers(a: Assistant) -> list[LLMProposer]:
        return [p for p in a.proposers if isinstance(p, LLMProposer)]

    assert llm_proposers(Assistant(llm="none")) == []
    (proposer,) = llm_proposers(Assistant(llm="scripted", llm_rate=0.1))
    assert proposer.rate == 0.1
    assert llm_proposers(Assistant(llm=ScriptedLLM()))[0].rate == DEFAULT_RATE
