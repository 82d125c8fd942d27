"""The agent: `Assistant` (the solve loop) and the joint study space."""

from hyperpilot.agent.assistant import Assistant, Result, TrialRecord
from hyperpilot.agent.proposer import Proposer, SolveContext
from hyperpilot.agent.study_space import StudySpace

__all__ = ["Assistant", "Proposer", "Result", "SolveContext", "StudySpace", "TrialRecord"]
