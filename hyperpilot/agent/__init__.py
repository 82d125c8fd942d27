"""The agent: `Assistant` (a tuning task end to end) and the proposers that advise the
core loop (LLM planner, code writer)."""

from hyperpilot.agent.assistant import Assistant
from hyperpilot.core.types import Result

__all__ = ["Assistant", "Result"]
