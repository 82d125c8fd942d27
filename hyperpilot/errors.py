"""Typed errors. Everything a user can trigger raises a subclass of `HyperpilotError`
whose message is one line that says what is wrong and what to do.

They deliberately do not derive from ValueError: pydantic would wrap a ValueError raised
in a validator into a ValidationError, and the user would lose the one clear line."""

from __future__ import annotations


class HyperpilotError(Exception):
    """Base class of every error a user can trigger."""


class SpaceError(HyperpilotError):
    """A search space or a config that does not fit it."""


class DataError(HyperpilotError):
    """A dataset that cannot be loaded or used for the task."""


class TaskError(HyperpilotError):
    """A task that names an unknown metric, model or task type, or is inconsistent."""


class StudyError(HyperpilotError):
    """A study that cannot be found, created or resumed."""


class TrialError(HyperpilotError):
    """A trial that failed; the study records it and goes on."""


class LLMError(HyperpilotError):
    """An LLM backend that is not installed, cannot be reached, times out, or whose
    answers stayed invalid after the retry budget (see `hyperpilot.agent.llm`)."""


class MemoryStoreError(HyperpilotError):
    """A trial memory that cannot be opened, read or written (corrupt, locked, missing parts)."""


class ClusterError(HyperpilotError):
    """A compute cluster (Ray) that cannot be reached or started (see `hyperpilot.sandbox.ray_executor`)."""
