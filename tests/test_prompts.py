"""Every prompt template renders (StrictUndefined), with and without memory examples."""

from __future__ import annotations

from typing import Any

import pytest

from hyperpilot.agent.planner import Example, config_row
from hyperpilot.errors import HyperpilotError
from hyperpilot.prompts import fmt_config, render, template_names
from hyperpilot.task import Task

EXAMPLES = [Example(task="wine, accuracy", model="svm", config={"C": 12.345, "gamma": 0.0004}, score=0.981),
            Example(model="svm", config={"C": 3.0, "gamma": 0.001})]
SAMPLES: dict[str, dict[str, Any]] = {
    "initial_design": {"task": Task(data="sklearn:wine"), "metric": "accuracy", "direction": "maximize",
                       "dataset_card": "Dataset: wine", "model_cards": ["Model: SVM"], "planned": ["svm C=10"],
                       "k": 2, "offered": True, "allowed": ["C: 1, 10, 100"]},
    "next_candidates": {"metric": "rmse", "direction": "minimize", "history": ["0.5 | 10,0.01"], "n_done": 1,
                        "columns": ["C", "gamma"], "candidates": ["A: 3,0.1", "B: 30,0.001"]},
    "parse_request": {"text": "tune svm on churn.csv", "data": "churn.csv", "columns": ["age", "churn"],
                      "models": ["svm: support vector, svc"], "metrics": ["roc_auc: auc, roc auc"]},
    "retry": {"error": "configs.0.C: Input should be 1.0 or 3.98", "hint": ""},
}
USES_EXAMPLES = ("initial_design",)


def test_every_template_has_a_sample() -> None:
    assert set(template_names()) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("examples", [[], EXAMPLES], ids=["no-examples", "examples"])
def test_template_renders(name: str, examples: list[Example]) -> None:
    variables = {**SAMPLES[name], **({"examples": examples} if name in USES_EXAMPLES else {})}
    messages = render(name, **variables)
    assert [m["role"] for m in messages][-1] == "user"
    assert all(m["content"].strip() and "{{" not in m["content"] and "{%" not in m["content"] for m in messages)
    text = messages[-1]["content"]
    if name in USES_EXAMPLES:
        assert ("similar past studies" in text) == bool(examples)
        if examples:
            assert "svm C=12.3 gamma=0.0004" in text


def test_a_missing_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(HyperpilotError, match="not given"):
        render("retry", hint="")
    with pytest.raises(HyperpilotError, match="no prompt template"):
        render("nope")


def test_candidates_are_lettered_and_the_answer_is_a_letter() -> None:
    system, user = render("next_candidates", **SAMPLES["next_candidates"])
    assert "lower is better" in system["content"] and "one letter" in system["content"]
    assert "a row of values: C, gamma." in system["content"]  # the column names once, in the cached part
    assert "A: 3,0.1" in user["content"] and "B: 30,0.001" in user["content"] and user["content"].endswith("its letter.")
    several = render("next_candidates", **{**SAMPLES["next_candidates"], "columns": []})[0]["content"]
    assert "row of values" not in several


def test_configs_are_compact() -> None:
    assert fmt_config({"C": 12.3456, "kernel": "rbf", "fit": True, "n": 3}) == 'C=12.3 kernel="rbf" fit=true n=3'
    names = ["C", "gamma", "kernel", "fit", "n", "max_features", "odd", "word"]
    row = config_row(names, {"C": 12.3456, "gamma": 0.0004213, "kernel": "rbf", "fit": True, "n": 3, "max_features": None,
                             "odd": "a b", "word": "null"})
    assert row == '12.3,.000421,rbf,true,3,null,"a b","null"'  # a bare name only where it cannot be read as anything else
