"""`task_from_text`: a request in words -> a Task, or a question when something is missing,
unknown or ambiguous (never a silent guess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperpilot.agent.llm import LLMUnavailable, ScriptedLLM
from hyperpilot.agent.request import COMPARE, task_from_text
from hyperpilot.agent.request_rules import NOT_COMPARED, read_duration
from hyperpilot.cards import model_cards
from hyperpilot.errors import TaskError
from hyperpilot.metrics import METRICS


@pytest.fixture()
def churn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rows = ["customer_id,age,plan,monthly_fee,Sale Price,churned"] + [
        f"C{i:03d},{20 + i % 50},{'pro' if i % 3 else 'basic'},{10 + i % 7},{100 + 7 * i % 13},{int(i % 4 == 0)}" for i in range(60)]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def capable(answer: dict[str, object]) -> ScriptedLLM:
    """A scripted model that counts as capable (free_proposals) and answers `answer`."""
    return ScriptedLLM([json.dumps(answer)] * 3, free_proposals=True)


def test_the_issue_example(churn: Path) -> None:
    task = task_from_text("tune a random forest on data.csv to predict churned, maximise F1, 40 trials")
    assert (Path(task.data).resolve(), task.target, task.models, task.metric, task.n_trials) == (churn, "churned", ["random_forest"], "f1", 40)


@pytest.mark.parametrize("text, expected", [
    ("tune svm and knn on sklearn:wine for balanced accuracy, 3-fold, seed 7", {
        "data": "sklearn:wine", "models": ["svm", "knn"], "metric": "balanced_accuracy", "cv_folds": 3, "seed": 7}),
    ("gradient boosting on the iris data, roc auc, within 2 minutes", {
        "data": "sklearn:iris", "models": ["hist_gradient_boosting"], "metric": "roc_auc", "timeout": 120.0, "n_trials": None}),
    ("regression on sklearn:diabetes minimising root mean squared error with gaussian process BO, budget of 12", {
        "data": "sklearn:diabetes", "task_type": "regression", "metric": "rmse", "sampler": "gp", "n_trials": 12}),
    ("iris with logistic regression, precision, try forty configs", {
        "data": "sklearn:iris", "models": ["logistic_regression"], "metric": "precision", "n_trials": 40, "task_type": None}),
    ("GBM on sklearn:breast_cancer, optimise sensitivity, for 2 hours", {
        "models": ["hist_gradient_boosting"], "metric": "recall", "timeout": 7200.0, "n_trials": None}),
    ("ridge on sklearn:diabetes, R², random_state=3", {"models": ["ridge"], "metric": "r2", "seed": 3}),
])
def test_rules_read_plain_requests(text: str, expected: dict[str, object]) -> None:
    task = task_from_text(text)
    assert {k: getattr(task, k) for k in expected} == expected


@pytest.mark.parametrize("phrase, seconds", [
    ("5 minutes", 300), ("5 min", 300), ("1h", 3600), ("an hour", 3600), ("half an hour", 1800), ("90 seconds", 90),
    ("in 10m", 600), ("for 2 hours", 7200), ("1h30", 5400), ("1 hour 30 minutes", 5400), ("an hour and a half", 5400),
    ("a 5-minute run", 300), ("1.5 hours", 5400), ("two minutes", 120), ("within 45 secs", 45), ("90s", 90),
])
def test_time_phrases(phrase: str, seconds: float) -> None:
    assert read_duration(f"tune knn on sklearn:iris {phrase} please") == seconds


@pytest.mark.parametrize("text", ["a table with 10m rows", "at most 5 minutes per trial", "a second model", "in 5 m", "svm"])
def test_what_is_not_a_time_budget(text: str) -> None:
    assert read_duration(text) is None


def test_two_time_budgets_are_a_question() -> None:
    with pytest.raises(TaskError, match="which time budget: 1 h or 5 min"):
        task_from_text("knn on sklearn:iris for 1 hour, or maybe 5 minutes")


def test_a_time_phrase_alone_lifts_the_trial_cap_and_a_count_keeps_it() -> None:
    assert (task_from_text("knn on sklearn:iris, 10 min").n_trials, task_from_text("knn on sklearn:iris, 10 min, 30 trials").n_trials) == (None, 30)


@pytest.mark.parametrize("text, target", [
    ("knn on data.csv, label: churned", "churned"), ("knn on data.csv target=CHURNED", "churned"),
    ("knn on data.csv. Target column is churned.", "churned"), ("data.csv, target: sale price", "Sale Price"),
    ("predict 'Sale Price' from data.csv", "Sale Price"), ("data.csv: predict the sale_price with ridge", "Sale Price"),
    ("knn on data.csv to predict the value of monthly fee", "monthly_fee"), ("classify plan in data.csv", "plan"),
])
def test_target_forms_match_the_columns(churn: Path, text: str, target: str) -> None:
    assert task_from_text(text).target == target


@pytest.mark.parametrize("name, alias", sorted({(n, a) for n, c in model_cards().items() for a in [n, *c.aliases]}))
def test_every_model_alias_names_its_card(name: str, alias: str) -> None:
    data = "sklearn:diabetes" if "binary" not in model_cards()[name].task_types else "sklearn:wine"
    assert task_from_text(f"tune {alias} on {data}").models == [name]


def test_aliases_are_unambiguous() -> None:
    owners: dict[str, str] = {}
    for name, card in model_cards().items():
        for alias in [name, *card.aliases]:
            assert owners.setdefault(alias, name) == name, f"{alias!r} names both {owners[alias]} and {name}"
            assert alias == alias.lower()


@pytest.mark.parametrize("text, question", [
    ("train xgboost on sklearn:wine", "unknown model 'xgboost' .*did you mean hist_gradient_boosting"),
    ("LightGBM on sklearn:wine", "unknown model 'lightgbm' .*did you mean hist_gradient_boosting"),
    ("xgbost on sklearn:wine", "unknown model 'xgbost' .*did you mean hist_gradient_boosting"),
    ("a randm forest on sklearn:wine", "unknown model 'randm forest' .*did you mean random_forest"),
    ("logistc regression on sklearn:wine", "unknown model 'logistc regression' .*did you mean logistic_regression"),
    ("naive bayes on sklearn:wine", "unknown model 'naive bayes'"),
    ("svm on sklearn:wine with MAPE", "unknown metric 'mape' .*did you mean mae"),
    ("svm on sklearn:wine, maximise MCC", "unknown metric 'mcc'"),
    ("svm on sklearn:wine, presicion", "unknown metric 'presicion' .*did you mean precision"),
    ("svm on sklearn:wine, precision and recall", "which metric should be optimised: precision or recall"),
    ("svm on sklearn:diabetes, accuracy", "metric 'accuracy' does not apply to a regression task"),
    ("logistic regression on sklearn:diabetes", "model 'logistic_regression' does not do regression"),
])
def test_no_silent_substitution(text: str, question: str) -> None:
    with pytest.raises(TaskError, match=question):
        task_from_text(text)


@pytest.mark.parametrize("name, alias", sorted({(m.name, a) for m in METRICS.values() for a in [m.name, *m.aliases]}))
def test_every_metric_name_is_understood(name: str, alias: str) -> None:
    data = "sklearn:diabetes" if "regression" in METRICS[name].task_types else "sklearn:breast_cancer"
    assert task_from_text(f"tune knn on {data}, optimise {alias}").metric == name


@pytest.mark.parametrize("text, question", [
    ("tune a random forest to predict churn", "which data"),
    ("tune a random forest on missing.csv to predict churn", "no such file"),
    ("tune knn on sklearn:iris for accuracy or f1", "which metric"),
    ("compare a.csv and b.csv", "which data"),
    ("tune a random forest on data.csv", "which column should be predicted"),
    ("tune a random forest on data.csv to predict revenue", "no column 'revenue'.*which column should be predicted"),
    ("knn on data.csv to predict churn", "no column 'churn'; did you mean 'churned'"),
    ("", "empty"),
])
def test_missing_or_ambiguous_pieces_raise_a_question(churn: Path, text: str, question: str) -> None:
    with pytest.raises(TaskError, match=question):
        task_from_text(text)


def test_a_column_may_follow_a_word_of_its_description(churn: Path) -> None:
    assert task_from_text("predict whether customers churned, data.csv").target == "churned"
    with pytest.raises(TaskError, match="no column 'revenue'"):
        task_from_text("predict revenue from churned, data.csv")


def test_a_request_about_a_dataframe_reads_its_columns() -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": range(40), "y": [i % 3 for i in range(40)], "Label": [i % 2 for i in range(40)]})
    task = task_from_text("random forest, target: label, 2 minutes", data=frame)
    assert (task.target, task.data, task.models, task.timeout) == ("Label", "<dataframe>", ["random_forest"], 120.0)
    with pytest.raises(TaskError, match="Likely in the DataFrame: Label, y"):
        task_from_text("knn please", data=frame)


def test_an_id_column_is_never_the_target_without_asking(churn: Path) -> None:
    with pytest.raises(TaskError, match="'customer_id' has a different value in every row, like an ID.*Likely in data.csv: churned"):
        task_from_text("knn on data.csv, predict customer_id")
    assert task_from_text("knn on data.csv", target="customer_id").target == "customer_id"  # an option is not a guess


def test_the_column_question_lists_likely_columns_first_and_hides_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    columns = ["machine_id"] + [f"s{i:03d}" for i in range(60)] + ["defect"] + [f"t{i}" for i in range(5)]
    rows = [",".join(columns)] + [",".join([f"M{r}"] + [str((r * 7 + i) % 11 / 10) for i in range(60)] + [str(r % 2)]
                                           + [str(r * i % 5 / 3) for i in range(5)]) for r in range(40)]
    (tmp_path / "wide.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(TaskError) as info:
        task_from_text("find good settings for gradient boosting on wide.csv")
    message = str(info.value)
    assert message.index("defect") < message.index("s000") and "Likely in wide.csv: defect" in message
    assert all(c in message for c in columns) and f"the other {len(columns) - 5}:" in message


def test_which_model_is_best_compares_suitable_cards(churn: Path) -> None:
    classify = task_from_text("which model is best for predicting churned in data.csv?")
    regress = task_from_text("what's the best model for sklearn:diabetes")
    every = task_from_text("compare all models on sklearn:wine")
    assert classify.models == [m for m in COMPARE if m != "ridge"][:5] and "logistic_regression" in classify.models
    assert regress.models == [m for m in COMPARE if m != "logistic_regression"][:5] and "ridge" in regress.models
    assert set(every.models) == {n for n, c in model_cards().items() if "multiclass" in c.task_types and n not in NOT_COMPARED}
    assert task_from_text("compare random forest and knn on sklearn:wine").models == ["random_forest", "knn"]


def test_options_win_over_the_text(churn: Path) -> None:
    task = task_from_text("tune svm on data.csv to predict churned, 40 trials", n_trials=5, models=["knn"])
    assert task.n_trials == 5 and task.models == ["knn"]
    task = task_from_text("xgboost on data.csv with MAPE for 1 hour or 5 minutes", models=["knn"], metric="f1", timeout=60.0,
                          target="churned")
    assert (task.models, task.metric, task.timeout, task.target) == (["knn"], "f1", 60.0, "churned")


def test_a_capable_llm_fills_what_the_rules_cannot_read(churn: Path) -> None:
    llm = capable({"target": "churned", "metric": "recall", "models": ["random_forest"], "n_trials": 40})
    task = task_from_text("which customers have churned? catch as many as you can, use trees from the forest, "
                          "optimise for it, data.csv, 40 trials", llm=llm)
    assert (task.target, task.metric, task.models, task.n_trials) == ("churned", "recall", ["random_forest"], 40)
    schema = llm.requests[0][1]
    assert schema["properties"]["target"]["anyOf"][0]["enum"] == ["customer_id", "age", "plan", "monthly_fee", "Sale Price", "churned"]
    assert "xgboost" not in json.dumps(schema) and "custom_code" not in json.dumps(schema)


def test_a_capable_llm_never_picks_an_id_column(churn: Path) -> None:
    with pytest.raises(TaskError, match="which column should be predicted.*Likely in data.csv: churned"):
        task_from_text("which customers will churn? data.csv", llm=capable({"target": "customer_id"}))


def test_what_the_rules_read_literally_wins_over_the_llm(churn: Path) -> None:
    llm = capable({"target": "plan", "metric": "accuracy", "models": ["svm"], "n_trials": 7, "time_budget_seconds": 5})
    task = task_from_text("knn on data.csv, predict churned, f1, 40 trials, 10 min", llm=llm)
    assert (task.target, task.metric, task.models, task.n_trials, task.timeout) == ("churned", "f1", ["knn"], 40, 600.0)


def test_the_llm_calling_a_one_model_request_a_comparison_keeps_the_model(churn: Path) -> None:
    # the embedded model flagged "tune random forest" as a comparison, which replaced it with 5 cards
    llm = capable({"compare_models": True})
    assert task_from_text("tune random forest on data.csv to predict churned", llm=llm).models == ["random_forest"]
    assert len(task_from_text("which model is best on data.csv to predict churned", llm=llm).models) > 1


def test_ungrounded_llm_fields_are_not_used(churn: Path) -> None:
    llm = capable({"target": "plan", "metric": "log_loss", "models": ["svm"], "n_trials": 7, "time_budget_seconds": 5})
    with pytest.raises(TaskError, match="Perhaps 'plan' \\(the LLM's reading\\)"):
        task_from_text("tune something on data.csv to predict who leaves", llm=llm)
    task = task_from_text("tune something on data.csv to predict who leaves", llm=llm, target="churned")
    assert (task.metric, task.models, task.n_trials, task.timeout) == (None, [], 20, None)


def test_the_llm_saying_a_model_is_unknown_is_a_question(churn: Path) -> None:
    with pytest.raises(TaskError, match="unknown model 'catboost'.*did you mean hist_gradient_boosting"):
        task_from_text("the cat booster on data.csv predicting churned", llm=capable({"unknown_model": "CatBoost"}))


@pytest.mark.parametrize("script", [[LLMUnavailable("down")] * 3, ["not json"] * 3, ['{"target": "nope"}'] * 3])
def test_a_failing_or_invalid_llm_leaves_the_rules_reading(churn: Path, script: list[object]) -> None:
    llm = ScriptedLLM(script, free_proposals=True)  # type: ignore[arg-type]
    assert task_from_text("knn on data.csv, label: churned, 5 min", llm=llm).target == "churned"
    with pytest.raises(TaskError, match="which column"):
        task_from_text("tune a random forest on data.csv", llm=ScriptedLLM(script, free_proposals=True))  # type: ignore[arg-type]


def test_a_small_llm_is_not_asked(churn: Path) -> None:
    llm = ScriptedLLM([json.dumps({"target": "churned"})])  # free_proposals False, like the embedded model
    with pytest.raises(TaskError, match="which column"):
        task_from_text("which customers have churned? use a random forest on data.csv", llm=llm)
    assert llm.requests == []


def test_cli_solve_takes_a_request_and_prints_the_llm_accounting(churn: Path) -> None:
    from hyperpilot.cli import app

    result = CliRunner().invoke(app, ["solve", "tune knn on data.csv to predict churned, 5 trials, 2-fold",
                                      "--llm", "scripted", "--llm-rate", "0.5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "LLM planner" in result.output and "scripted" in result.output and "rank of llm trials" in result.output


def test_a_parsed_request_solves_end_to_end_for_precision() -> None:
    from hyperpilot import Assistant
    from hyperpilot.sandbox import InProcessExecutor

    task = task_from_text("logreg on sklearn:breast_cancer, precision, 3 trials, 2-fold")
    result = Assistant(llm="none", memory=False, executor=InProcessExecutor()).solve(task)
    assert result.task.metric == "precision" and 0.8 < result.cv_score <= 1.0 and result.n_trials == 3


def test_cli_solve_without_data_or_request_says_what_to_give() -> None:
    from hyperpilot.cli import app

    result = CliRunner().invoke(app, ["solve", "--llm", "none"])
    assert result.exit_code == 2 and "--data" in result.output
