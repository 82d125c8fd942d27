"""Tools the agent calls: profile data, train (evaluate a config)."""

from hyperpilot.tools.train import Executor, InProcessExecutor, Outcome, run_trial

__all__ = ["Executor", "InProcessExecutor", "Outcome", "run_trial"]
