"""Benchmarks: a Bayesmark-style problem set and the HPOBench tables, hyperpilot against
random search, Optuna TPE/GP, SMAC3 and HEBO, scored the way Bayesmark scores.

    python -m evals run --quick            # smoke test, a few minutes
    python -m evals run --suite bayesmark --methods random,tpe,hyperpilot --seeds 5 --budget 30
    python -m evals report                 # tables + plots into docs/
"""
