"""The benchmark harness: Bayesmark scoring, the cache, and a tiny real run."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from evals.methods import all_methods
from evals.problems import BayesmarkProblem, get_problems
from evals.runner import load_rows, run_cells
from evals.scoring import bayesmark_aggregate, expected_min, normalised_scores, paired


def test_expected_min_matches_brute_force() -> None:
    pool = np.array([3.0, 1.0, 2.0, 5.0])
    for n in (1, 2, 3):
        draws = [min(c) for c in itertools.product(pool, repeat=n)]
        assert expected_min(pool, n) == pytest.approx(np.mean(draws))


def test_random_scores_near_one_and_optimum_zero() -> None:
    rng = np.random.default_rng(0)
    rows = [{"problem": "p", "method": "random", "seed": s, "losses": list(rng.uniform(0, 1, 30))} for s in range(200)]
    rows.append({"problem": "p", "method": "oracle", "seed": 0, "losses": [-1.0] * 30})
    scores = normalised_scores(rows, budgets=(5, 30))
    assert np.mean(scores[("p", "random", 5)]) == pytest.approx(1.0, abs=0.1)
    assert scores[("p", "oracle", 30)] == [0.0]


def test_bayesmark_aggregate_is_a_ratio_of_grand_means() -> None:
    """By hand at n = 1 (the expected minimum of one draw is the mean of the clipped pool).
    p1: random [1, 3, 5] -> clip 3, clipped pool [1, 3, 3], E = 7/3; a finds 0 = opt;
    scale 3: a 0, random 7/9. p2: random [2, 4, 6] -> clip 4, E = 10/3, opt 2 (random's);
    a's 5 clips to 4; scale 2: a 1, random 2/3. Grand means 1/2 and 13/18: 9/13."""
    rows = [{"problem": "p1", "method": "random", "seed": 0, "losses": [1.0, 3.0, 5.0]},
            {"problem": "p1", "method": "a", "seed": 0, "losses": [0.0]},
            {"problem": "p2", "method": "random", "seed": 0, "losses": [2.0, 4.0, 6.0]},
            {"problem": "p2", "method": "a", "seed": 0, "losses": [5.0]}]
    normed, grand, k = bayesmark_aggregate(rows, budgets=(1,))[("a", 1)]
    assert (normed, grand, k) == (pytest.approx(9 / 13), pytest.approx(0.5), 2)
    # random search is 1 at every budget, the optimum 0
    rng = np.random.default_rng(0)
    rows = [{"problem": p, "method": "random", "seed": s, "losses": list(rng.uniform(0, 1, 30))}
            for p in ("p1", "p2") for s in range(200)]
    rows += [{"problem": p, "method": "oracle", "seed": 0, "losses": [-1.0] * 30} for p in ("p1", "p2")]
    scores = bayesmark_aggregate(rows, budgets=(5, 30))
    assert scores[("random", 5)][0] == pytest.approx(1.0, abs=0.05) and scores[("random", 30)][0] == pytest.approx(1.0, abs=0.1)
    assert scores[("oracle", 30)][:2] == (0.0, 0.0)


def test_paired_sign_test_by_hand() -> None:
    """Five problems a wins, one tie (both clipped at the median random loss), none lost:
    two-sided sign test p = 2 / 2**5 with the tie dropped."""
    rows = []
    for i in range(6):
        rows.append({"problem": f"p{i}", "method": "random", "seed": 0, "losses": [1.0, 2.0, 3.0]})  # clip 2
        a, b = ([0.5], [1.0]) if i < 5 else ([5.0], [9.0])
        for seed in (0, 1):
            rows += [{"problem": f"p{i}", "method": "a", "seed": seed, "losses": a},
                     {"problem": f"p{i}", "method": "b", "seed": seed, "losses": b}]
    assert paired(rows, "a", "b", 1) == (5, 1, 0, pytest.approx(0.0625))
    assert paired(rows, "b", "a", 1) == (0, 1, 5, pytest.approx(0.0625))
    wins, ties, losses, p = paired(rows, "a", "a", 1)
    assert (wins, ties, losses) == (0, 6, 0) and math.isnan(p)


def test_problem_objective_is_the_assistants_objective() -> None:
    problem = BayesmarkProblem("iris", "knn", "accuracy")
    config = {"n_neighbors": 7, "p": 1}
    loss = problem.loss(config)
    assert -1.0 <= loss < -0.8  # accuracy negated
    assert problem.loss(config) == loss  # deterministic: a fixed data seed
    assert math.isfinite(problem.holdout_loss(config))
    # the very value hyperpilot's Assistant computes for a trial of the same config
    from evals.spaces import bench_card

    default = bench_card("knn").default_config()  # the benchmark card's default, not the bundled card's
    trace = all_methods()["hyperpilot-bo"].run(problem.problem(), 2, seed=0)
    assert trace.configs[0] == default and trace.losses[0] == problem.loss(default)
    assert all(problem.space().validate(c) == c for c in trace.configs)


def test_the_harness_searches_the_benchmark_spaces() -> None:
    """Benchmark spaces stay in evals/: the problems, and hyperpilot itself inside
    `benchmark_cards()`, use the cards as they were when the benchmark rows were run, while
    the bundled cards have product-sized spaces; the bundled ones are back afterwards."""
    from evals.spaces import bench_card, bench_cards, benchmark_cards
    from hyperpilot.cards import get_model_card
    from hyperpilot.trainers import get_trainer

    svm = bench_card("svm")
    assert (svm.space["gamma"].low, svm.space["gamma"].high) == (1e-4, 1e-3)  # Bayesmark's narrow range
    assert get_model_card("svm").space["gamma"].high > 1e-3  # the product's
    for p in get_problems("bayesmark"):
        assert p.space == bench_card(p.name.split("-")[2]).space
    bundled = {name: get_model_card(name) for name in bench_cards()}
    with benchmark_cards():
        with benchmark_cards():  # re-entrant
            assert get_model_card("svm") is svm and get_trainer("svm").card is svm
        for name, card in bench_cards().items():
            assert get_model_card(name) is card and get_trainer(name).card is card
    for name, card in bundled.items():
        assert get_model_card(name) is card and get_trainer(name).card is card


def test_table_runs_through_the_study_loop() -> None:
    from hyperpilot.samplers import make_sampler

    problem = get_problems("hpobench", ["hpobench-car"])[0]
    a = all_methods()["hyperpilot-bo"].run(problem, 8, seed=3)
    b = all_methods()["hyperpilot-bo"].run(problem, 8, seed=3)
    assert a.configs == b.configs and a.losses == b.losses and len(a.losses) == 8  # seeded: reproducible
    assert all(problem.space.validate(c) == c for c in a.configs)
    assert a.losses == [problem.loss(c) for c in a.configs]
    # the same draws as bare Optuna asks with hyperpilot's sampler on the table's own distributions
    import optuna

    study = optuna.create_study(sampler=make_sampler("tpe", 3, 8))
    for loss in a.losses:
        trial = study.ask(problem.space.distributions())
        study.tell(trial, loss)
    assert [dict(t.params) for t in study.trials] == a.configs


def test_run_resumes_from_cache(tmp_path: Path) -> None:
    problems = get_problems("quick", ["bm-iris-knn-accuracy"])
    methods = [all_methods()["random"], all_methods()["tpe"]]
    path = tmp_path / "cells.jsonl"
    rows = run_cells(problems, methods, [0, 1], 5, path, log=lambda *_: None)
    assert len(rows) == 4 and all(len(r["losses"]) == 5 for r in rows)
    assert set(rows[0]["holdout"]) == {"5"}
    again = run_cells(problems, methods, [0, 1, 2], 5, path, log=lambda *_: None)
    assert len(again) == 6  # only the new seed ran
    assert len(load_rows(path)) == 6


def test_memory_method_warm_starts_from_other_datasets_only(tmp_path: Path) -> None:
    from evals.methods.memory import HyperpilotMemory, write_suite_pack

    problems = get_problems("fast", ["bm-iris-knn-accuracy", "bm-wine-knn-accuracy"])
    rows = run_cells(problems, [all_methods()["hyperpilot-bo"]], [0], 4, tmp_path / "cells.jsonl", log=lambda *_: None)
    pack = tmp_path / "pack.jsonl"
    assert write_suite_pack(rows, problems, pack) == (2, 8)
    method = HyperpilotMemory(pack)
    assert method.unavailable() is None
    assert "no memory pack" in (HyperpilotMemory(tmp_path / "missing.jsonl").unavailable() or "")

    iris = problems[0]
    trace = method.run(iris, 4, seed=0)
    wine_configs = next(r["configs"] for r in rows if r["problem"] == "bm-wine-knn-accuracy")
    iris_configs = next(r["configs"] for r in rows if r["problem"] == "bm-iris-knn-accuracy")
    assert trace.configs[0] == iris_configs[0]  # the card default first, as in every cold run
    # then the memory's warm start: a config from the wine study (iris' own study is excluded)
    assert trace.configs[1] in wine_configs[1:]


def test_memory_method_on_tables(tmp_path: Path) -> None:
    from evals.methods.memory import HyperpilotMemory, write_suite_pack

    problems = get_problems("hpobench", ["hpobench-car", "hpobench-vehicle", "hpobench-kc1"])
    methods = all_methods()
    log: list[str] = []
    rows = run_cells(problems, [methods["hyperpilot-bo"], methods["hyperpilot-llm"]], [0], 6, tmp_path / "t.jsonl",
                     log=log.append)
    assert any("hyperpilot-llm cannot run 3 problem(s)" in line for line in log) and len(rows) == 3
    pack = tmp_path / "pack.jsonl"
    assert write_suite_pack(rows, problems, pack) == (3, 18)
    method = HyperpilotMemory(pack)
    others = [c for r in rows if r["problem"] != "hpobench-car" for c in r["configs"]]
    trace = method.run(problems[0], 6, seed=1)
    assert trace.configs[0] in others  # the portfolio's config, of the other datasets only (car's own excluded)
    assert len(trace.losses) == 6 and all(0 <= x <= 1 for x in trace.losses)
    assert method.run(problems[0], 6, seed=1).configs == trace.configs  # reproducible


def test_report_has_subset_tables_and_goal_lines(tmp_path: Path) -> None:
    from evals.__main__ import report

    rng = np.random.default_rng(0)
    rows = []
    for p in ("p1", "p2", "p3"):
        for s in range(5):
            rows.append({"problem": p, "method": "random", "seed": s, "losses": list(rng.uniform(0, 1, 32))})
            rows.append({"problem": p, "method": "tpe", "seed": s, "losses": list(rng.uniform(0, 0.8, 32))})
            rows.append({"problem": p, "method": "hyperpilot-memory", "seed": s, "losses": [0.0] + list(rng.uniform(0, 1, 29))})
            if p == "p1":  # a method that ran one problem only (like HEBO on a subset)
                rows.append({"problem": p, "method": "hebo", "seed": s, "losses": list(rng.uniform(0, 1, 30))})
    for r in rows:
        r.update(budget=len(r["losses"]), wall_seconds=1.0, overhead_per_suggestion=0.01)
    text = report(rows, "unit", tmp_path)
    assert (tmp_path / "unit-convergence.png").stat().st_size > 0
    assert "unit, 3 problems" in text and "the 1 problems hebo ran" in text
    assert "hyperpilot-memory against Optuna TPE" in text
    # memory's first trial is the best seen on every problem: it reaches TPE's level at 32
    assert "hyperpilot-memory reached tpe's level on 3 of 3 problems" in text


def test_tpe_plus_default_is_hyperpilot_bo_at_the_benchmark_budget() -> None:
    """The honest baseline: plain Optuna TPE with the card default enqueued first proposes
    hyperpilot-bo's configs trial for trial at 30 trials. hyperpilot seeds its sampler with
    seed * 100_003 (so only seed 0 is the very same run) and starts with budget // 3 random
    trials (10 at 30 = TPE's default); its multivariate TPE equals plain TPE in Optuna 5 on
    these spaces."""
    from evals.spaces import bench_card

    problem = get_problems("fast", ["bm-iris-knn-accuracy"])[0]
    methods = all_methods()
    ours = methods["tpe+default"].run(problem, 30, seed=100_003)
    assert ours.configs[0] == bench_card("knn").default_config()
    assert ours.configs == methods["hyperpilot-bo"].run(problem, 30, seed=1).configs
    rand = methods["random+default"].run(problem, 4, seed=1)
    assert rand.configs[0] == ours.configs[0] and rand.losses[0] == ours.losses[0]
    assert len({str(c) for c in rand.configs}) == 4
    table = get_problems("hpobench", ["hpobench-car"])[0]
    assert not methods["tpe+default"].supports(table) and methods["tpe"].supports(table)  # a table has no card default


def test_flaml_vs_runs_both_on_the_same_split(tmp_path: Path) -> None:
    """A real (tiny) cell of the FLAML comparison: both fit on hyperpilot's own train split
    and are scored on its held-out rows; the table and the cache work."""
    from evals.flaml_vs import hpobench_frame, markdown, run, split_of, task_for

    task = task_for("sklearn:iris", 1, 1.0)
    X_train, X_test, *_ = split_of(task)
    assert (len(X_train), len(X_test)) == (120, 30) and task.metric == "accuracy" and task.n_trials is None
    out = tmp_path / "fv.jsonl"
    rows = run(["sklearn:iris"], 1, 1.0, out, log=lambda *_: None)
    assert {r["method"] for r in rows} == {"hyperpilot", "flaml"} and all(0.5 < r["score"] <= 1 for r in rows)
    assert run(["sklearn:iris"], 1, 1.0, out, log=lambda *_: None) == rows  # cached: nothing re-runs
    assert "| sklearn:iris | accuracy | 1 |" in markdown(rows, 1.0)
    frame = hpobench_frame("car")
    assert frame.shape == (30000, 6) and frame["val_acc"].between(0, 1).all()


def test_pick_quality_ranks_and_table() -> None:
    from evals.llm_pick_quality import ranks, table

    assert ranks([0.9, 0.8, 0.9, 0.7], maximize=True) == [1.5, 3.0, 1.5, 4.0]  # ties share
    assert ranks([3.0, 1.0, 2.0, 4.0], maximize=False) == [3.0, 1.0, 2.0, 4.0]
    rows = [{"problem": "p", "seed": 0, "ranks": [2.0, 1.0, 3.0, 4.0], "raw": 0, "calibrated": 1},
            {"problem": "p", "seed": 1, "ranks": [1.0, 2.0, 3.0, 4.0], "raw": 0, "calibrated": 0}]
    text = table(rows)
    assert "| A | 1.50" in text and "| calibrated | 1.00" in text and "1 / 1 / 0" in text and "| 1/1/0/0 |" in text
