"""Ray: `RayExecutor` (each trial a Ray task running the sandboxed trainer), `--ray`, and
`integrations.ray_tune.points_to_evaluate` against the real Ray Tune. One local Ray (on
loopback, started by hyperpilot's own `connect_ray`) serves the whole module; skipped when
Ray is not installed."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from hyperpilot import Assistant, Task, studies
from hyperpilot.agent.llm import ScriptedLLM
from hyperpilot.cli import app
from hyperpilot.testing import check_executor

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray for the module, started the way hyperpilot starts one; HOME is a temporary
    folder, so the bootstrap file it writes lands there, not in the real home."""
    from hyperpilot.sandbox.ray_executor import connect_ray

    home = tmp_path_factory.mktemp("ray-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("HYPERPILOT_HOME", str(home / "hyperpilot"))
        for name in ("RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE"):
            mp.delenv(name, raising=False)
        assert connect_ray("auto") is True  # started here, not reused from elsewhere
        import ray

        try:
            yield home
        finally:
            ray.shutdown()


def test_the_local_ray_stays_on_loopback(local_ray: Path) -> None:
    import ray

    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    assert (local_ray / "ray_bootstrap_config.yaml").read_text() == "provider: {type: local}\n"
    assert [os.environ[k] for k in ("RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE")] == \
        ["0", "0", "disabled"]
    assert ray.cluster_resources()["CPU"] == len(os.sched_getaffinity(0))


def test_ray_executor_passes_the_executor_contract(local_ray: Path) -> None:
    from hyperpilot.sandbox.ray_executor import RayExecutor

    executor = RayExecutor(workers=2)
    executor.warm()
    check_executor(executor)
    executor.close()


def test_a_model_that_trains_in_epochs_asks_ray_for_a_gpu_where_the_cluster_has_one() -> None:
    import numpy as np
    import pandas as pd

    from hyperpilot.core.executor import Job
    from hyperpilot.sandbox.ray_executor import RayExecutor

    def job(model: str, code: str | None = None) -> Job:
        task = Task(data="x", models=[model]).resolved("binary")
        return Job(model, {}, task, pd.DataFrame({"a": [0.0]}), np.zeros(1), [], ("proba",), code=code)

    auto, two = RayExecutor(), RayExecutor(gpus=2.0)
    assert [auto._gpus_for(job(m), 4.0) for m in ("torch_mlp", "torch_cnn", "lora_text", "knn")] == [1.0, 1.0, 1.0, 0.0]
    assert auto._gpus_for(job("torch_mlp"), 0.0) == 0.0  # no GPU in the cluster: on CPUs
    assert auto._gpus_for(job("custom_code", code="def build(c): ..."), 4.0) == 0.0
    assert two._gpus_for(job("knn"), 0.0) == 2.0  # given: always asked for


def _solve(executor: Any, name: str, **kw: Any) -> optuna.Study:
    task = Task(data="sklearn:iris", models=["logistic_regression"], n_trials=3, cv_folds=2, seed=3, study_name=name)
    Assistant(executor=executor, workers=2, memory=None, llm="none", **kw).solve(task)
    return studies.load_study(name)


def test_a_solve_through_ray_gives_the_local_executors_trials(local_ray: Path) -> None:
    from hyperpilot.sandbox.ray_executor import RayExecutor

    on_ray = _solve(RayExecutor(workers=2), "on-ray")
    here = _solve(None, "here")  # the default: a local SandboxExecutor with 2 workers
    ray_trials, local_trials = on_ray.get_trials(), here.get_trials()
    assert len(ray_trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in ray_trials)
    # same seed: the default, then the sampler's first picks; the same folds and seeds give the same scores
    assert [t.params for t in ray_trials] == [t.params for t in local_trials]
    assert [t.value for t in ray_trials] == pytest.approx([t.value for t in local_trials])
    assert [t.user_attrs.get("ray_node") for t in ray_trials] == ["127.0.0.1"] * 3  # really ran as Ray tasks
    assert not any("ray_node" in t.user_attrs for t in local_trials)
    assert studies.run_settings(on_ray)["ray"] == "auto" and studies.run_settings(here)["ray"] is None


class PruneAfterTrialZero(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number > 0


def test_pruning_works_through_ray(local_ray: Path) -> None:
    from hyperpilot.sandbox.ray_executor import RayExecutor

    task = Task(data="sklearn:iris", models=["logistic_regression"], n_trials=3, cv_folds=4, seed=1, study_name="pruned")
    Assistant(executor=RayExecutor(workers=1), memory=None, llm="none", pruner=PruneAfterTrialZero()).solve(task)
    trials = studies.load_study("pruned").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    assert [len(t.intermediate_values) for t in trials] == [4, 1, 1]  # nothing reported after the stop is scored


def test_a_stop_reaches_the_sandboxed_trial_through_the_stop_flag_actor(local_ray: Path) -> None:
    """What a Ray task runs (`_trial_task`, here in this process), with the real stop-flag
    actor: once the coordinator sets the flag, the sandboxed trial stops at its next report."""
    import ray

    from hyperpilot.cards import get_model_card
    from hyperpilot.core.cv import CrossValidation
    from hyperpilot.core.executor import JobResult
    from hyperpilot.data import load_dataset
    from hyperpilot.sandbox import InProcessExecutor
    from hyperpilot.sandbox.ray_executor import _Stops, _trial_task

    d = load_dataset("sklearn:digits", None)
    task = Task(data="sklearn:digits", models=["random_forest"], cv_folds=8).resolved("multiclass")
    job = CrossValidation(InProcessExecutor(), d.X, d.y, task).job("random_forest", get_model_card("random_forest").default_config(), 0)
    stops = ray.remote(num_cpus=0)(_Stops).remote()
    items: list[Any] = []
    for item in _trial_task(job, [ray.put((job.X, job.y))], "key", stops, (None, None, None)):
        items.append(item)
        if len(items) == 1:
            ray.get(stops.stop.remote("key"))  # the coordinator's answer to fold 0: prune
    *reports, result = items
    assert isinstance(result, JobResult) and result.stopped and not result.ok, result
    assert [step for step, _ in reports] == list(range(len(reports))) and 1 <= len(reports) < 8  # of 8 folds
    ray.kill(stops)


@pytest.mark.parametrize(("address", "env", "says"), [
    ("127.0.0.1:1", None, "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("no-port-here", None, "is not a Ray address"),
    ("auto", "127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),  # auto goes to $RAY_ADDRESS when set
])
def test_a_bad_ray_address_is_one_line(address: str, env: str | None, says: str, local_ray: Path) -> None:
    result = CliRunner().invoke(app, ["solve", "--data", "sklearn:iris", "--ray", address, "--llm", "none", "--no-memory"],
                                env={"RAY_ADDRESS": env})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.output, result.stderr


def test_points_to_evaluate_start_a_real_ray_tune_search(local_ray: Path, tmp_path: Path) -> None:
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from hyperpilot.integrations import points_to_evaluate

    space = {"svc__C": tune.loguniform(1e-2, 1e2), "svc__gamma": tune.loguniform(1e-3, 1.0), "kernel": "rbf"}
    llm = ScriptedLLM(['{"configs": [{"model": "svm", "C": 8.0, "gamma": 0.0251, "tol": 0.00251, "reason": "a"},'
                       ' {"model": "svm", "C": 32768.0, "gamma": 1.0, "tol": 0.00251, "reason": "b"}]}'])
    points = points_to_evaluate(space, "svm", "sklearn:iris", memory=None, llm=llm)
    # the card default, then the LLM's two, in the user's names and clipped into the user's domains
    assert points == [{"svc__C": 1.0, "svc__gamma": 0.1}, {"svc__C": 8.0, "svc__gamma": 0.0251},
                      {"svc__C": 100.0, "svc__gamma": 1.0}]

    def objective(config: dict[str, Any]) -> dict[str, float]:
        from sklearn.datasets import load_iris
        from sklearn.model_selection import cross_val_score
        from sklearn.svm import SVC

        X, y = load_iris(return_X_y=True)
        model = SVC(C=config["svc__C"], gamma=config["svc__gamma"], kernel=config["kernel"])
        return {"accuracy": float(cross_val_score(model, X, y, cv=2).mean())}

    search = OptunaSearch(points_to_evaluate=points, metric="accuracy", mode="max", seed=0)
    tuner = tune.Tuner(objective, param_space=space,
                       tune_config=tune.TuneConfig(search_alg=search, num_samples=5, max_concurrent_trials=1),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="warm", verbose=0))
    results = tuner.fit()
    configs = [{k: r.config[k] for k in ("svc__C", "svc__gamma")} for r in results]
    assert len(results) == 5 and not results.errors
    for point in points:  # Tune ran hyperpilot's points (first: one trial at a time) ...
        assert point in configs
    assert sum(c not in points for c in configs) == 2  # ... and OptunaSearch's own picks after them


def test_a_ray_trial_is_stopped_at_the_time_budgets_end(local_ray: Path) -> None:
    """`Job.stop_at` is this process's clock: it reaches the Ray task as the seconds left, and
    the worker's sandbox kills the trial then (here a program that would sleep 10 minutes)."""
    import time

    from hyperpilot.cards import get_model_card
    from hyperpilot.core.cv import CrossValidation
    from hyperpilot.data import load_dataset
    from hyperpilot.sandbox import InProcessExecutor
    from hyperpilot.sandbox.ray_executor import RayExecutor
    from hyperpilot.trainers.code import CUSTOM_CODE

    slow = "import time\nfrom sklearn.dummy import DummyClassifier\n\n\ndef build(config):\n    time.sleep(600)\n    return DummyClassifier()\n"
    d = load_dataset("sklearn:iris", None)
    task = Task(data="sklearn:iris", models=[CUSTOM_CODE], cv_folds=2).resolved("multiclass")
    job = CrossValidation(InProcessExecutor(), d.X, d.y, task).job(
        CUSTOM_CODE, get_model_card(CUSTOM_CODE).default_config(), 0, slow, stop_at=time.perf_counter() + 5)
    executor = RayExecutor(workers=1)
    try:
        start = time.perf_counter()
        res = executor.run(job, lambda step, response: False)
        took = time.perf_counter() - start
    finally:
        executor.close()
    assert res.stopped and not res.ok and res.error == "stopped at the end of the time budget", res
    assert took < 120  # the sandbox start, then 5 s: not the program's 10 minutes
