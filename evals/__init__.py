"""Benchmarks: a Bayesmark-style problem set and the HPOBench tables, hyperpilot against
random search, Optuna TPE/GP, SMAC3 and HEBO, scored the way Bayesmark scores.

    python -m evals run --quick                          # smoke test (CI), a few minutes
    python -m evals run --suite fast --methods random,tpe,gp,smac,hyperpilot-bo,hyperpilot-llm --seeds 5
    python -m evals pack --suite fast                    # memory pack from the hyperpilot-bo runs
    python -m evals run --suite fast --methods hyperpilot-memory --seeds 5
    python -m evals report --suite fast                  # docs/benchmarks/fast.md + convergence PNG

Suites: bayesmark (82 problems), llambo (25), fast (20), hpobench (8 tables), quick (3).
Methods: random, tpe, gp, smac, hebo (own venv: `bash evals/make_hebo_venv.sh`),
hyperpilot-bo (`--llm none`), hyperpilot-llm (embedded LLM, no memory) and
hyperpilot-memory (leave-one-dataset-out from the suite's pack). Every finished
(problem, method, seed) cell is a JSON line in evals/results/SUITE.jsonl, so a run that
stops resumes where it stopped. docs/benchmarks.md says how long each run took here.
"""
