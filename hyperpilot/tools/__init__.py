"""Tools the agent calls: profile data, train (evaluate a config)."""

from hyperpilot.tools.train import Outcome, run_trial

__all__ = ["Outcome", "run_trial"]
