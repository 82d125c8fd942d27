"""The PyTorch trainers (`torch_mlp`, `torch_cnn`): real short solves, per-epoch reports
as Optuna intermediate values, a pruned trial, a resumed study, determinism, clear lines
for pixel columns that make no image, and (with CUDA) a GPU run."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from hyperpilot import studies
from hyperpilot.agent.assistant import Assistant
from hyperpilot.core.proposer import Proposer, StudyContext
from hyperpilot.core.types import Suggestion
from hyperpilot.errors import DataError
from hyperpilot.sandbox import InProcessExecutor
from hyperpilot.task import Task
from hyperpilot.trainers import get_trainer
from hyperpilot.trainers.torch_base import lr_factor
from hyperpilot.trainers.torch_nets import image_shape

torch = pytest.importorskip("torch")


class Queue(Proposer):
    """Queues the given configs after the card default (a user's own configs)."""

    def __init__(self, *configs: tuple[str, dict]) -> None:
        self.configs = configs

    def start(self, ctx: StudyContext) -> list[Suggestion]:
        return [Suggestion(m, ctx.space.cards[m].space.validate(c), "user") for m, c in self.configs] if ctx.fresh else []


def test_mlp_study_reports_epochs_prunes_and_resumes() -> None:
    """Sandboxed: the default trains every epoch (its learning curve is the trial's
    intermediate values); a hopeless config is PRUNED after an epoch; resuming adds a trial."""
    hopeless = {"optimizer": "sgd", "lr": 1e-4, "epochs": 10, "width": 16, "depth": 1}
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    task = Task(data="sklearn:iris", models=["torch_mlp"], n_trials=2, cv_folds=2, study_name="mlp-prune")
    result = Assistant([Queue(("torch_mlp", hopeless))], memory=False, pruner=pruner).solve(task)
    study = studies.load_study("mlp-prune")
    first, second = study.trials
    epochs = get_trainer("torch_mlp").card.default["epochs"]
    assert first.state.name == "COMPLETE" and sorted(first.intermediate_values) == list(range(epochs))
    assert first.user_attrs["epochs_run"] == epochs and first.user_attrs["device"] in ("cpu", "cuda")
    assert first.value == pytest.approx(first.intermediate_values[epochs - 1])  # the score of the last epoch
    assert len(first.user_attrs["fold_values"]) == 2
    assert second.state.name == "PRUNED" and second.user_attrs["epochs_run"] < 10
    assert result.n_pruned == 1 and result.cv_score > 0.8 and result.test_score > 0.8

    resumed = Assistant(memory=False, pruner=pruner).resume("mlp-prune", n_trials=3)
    assert resumed.n_trials == 3 and len(studies.load_study("mlp-prune").trials) == 3


def test_card_pruner_is_used_when_the_user_gives_none() -> None:
    mlp, cnn, rf = (get_trainer(m).card for m in ("torch_mlp", "torch_cnn", "random_forest"))
    hyperband = studies.make_pruner([mlp, cnn])
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert isinstance(studies.make_pruner([get_trainer("lora_text").card]), optuna.pruners.SuccessiveHalvingPruner)
    # a scikit-learn model reports after folds, not epochs: a mixed study gets none
    assert isinstance(studies.make_pruner([mlp, rf]), optuna.pruners.NopPruner)


def test_mlp_regression_is_deterministic_and_standardises_on_the_training_rows() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(1000, 300, 80), "b": rng.normal(size=80)})
    y = 0.01 * X["a"].to_numpy() + X["b"].to_numpy()
    task = Task(data="x", metric="rmse").resolved("regression")
    trainer = get_trainer("torch_mlp")
    config = {**trainer.card.default_config(), "epochs": 40}
    first = trainer.fit(config, X.iloc[:60], y[:60], task).predict(X.iloc[60:])
    again = trainer.fit(config, X.iloc[:60], y[:60], task).predict(X.iloc[60:])
    assert np.array_equal(first, again)
    assert np.sqrt(np.mean((first - y[60:]) ** 2)) < np.std(y[60:])  # learns something, in the target's units


def test_cnn_on_digits_images(tmp_path) -> None:
    digits = load_digits()
    frame = pd.DataFrame(digits.data[:400], columns=[f"p{i}" for i in range(64)]).assign(label=digits.target[:400])
    frame.to_csv(tmp_path / "digits.csv", index=False)
    task = Task(data=str(tmp_path / "digits.csv"), target="label", models=["torch_cnn"], n_trials=1, cv_folds=2)
    result = Assistant(executor=InProcessExecutor(), memory=False).solve(task)
    assert result.cv_score > 0.85 and result.test_score > 0.85
    assert result.dataset_card.image_shape == [1, 8, 8] and "Images: 1×8×8" in result.dataset_card.to_text()
    trial = studies.load_study(result.study_name).trials[0]
    assert len(trial.intermediate_values) == get_trainer("torch_cnn").card.default["epochs"]


def test_pixels_that_make_no_image_give_one_line() -> None:
    with pytest.raises(DataError, match="13 feature columns are not a square"):
        Assistant(executor=InProcessExecutor(), memory=False).solve(Task(data="sklearn:wine", models=["torch_cnn"]))
    X = pd.DataFrame(np.zeros((3, 64)))
    with pytest.raises(DataError, match="do not make the declared image shape 3×8×8"):
        image_shape(X, [3, 8, 8])
    assert image_shape(X) == (1, 8, 8) and image_shape(X, [1, 4, 16]) == (1, 4, 16)
    with pytest.raises(DataError, match="not numeric"):
        image_shape(X.assign(name="x"))


def test_lr_schedules() -> None:
    cosine = [lr_factor(s, 100, 0.1, "cosine") for s in range(100)]
    assert cosine[0] < 0.2 and max(cosine) == pytest.approx(1.0, abs=0.02) and cosine[-1] < 0.01
    assert all(a <= b + 1e-12 for a, b in zip(cosine[:10], cosine[1:11], strict=True))  # warm-up rises
    assert lr_factor(50, 100, 0.0, "constant") == 1.0
    one_cycle = [lr_factor(s, 100, 0.0, "one_cycle") for s in range(100)]
    assert one_cycle[0] == pytest.approx(1 / 25) and int(np.argmax(one_cycle)) == 30 and one_cycle[-1] < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_mlp_trains_on_the_gpu_in_the_sandbox() -> None:
    """With CUDA the sandbox passes the GPU through (CUDA_VISIBLE_DEVICES) and the trial
    trains there in bf16 autocast; the trial records the device."""
    task = Task(data="sklearn:breast_cancer", models=["torch_mlp"], n_trials=1, cv_folds=2, study_name="mlp-gpu")
    result = Assistant(memory=False).solve(task)
    trial = studies.load_study("mlp-gpu").trials[0]
    assert trial.user_attrs["device"] == "cuda" and result.cv_score > 0.9
