"""The core: one study loop for every caller (`loop.StudyLoop`), trial handles with a
report channel, typed suggestions and outcomes (`types`), the proposer and executor
extension points (`proposer`, `executor`), the joint search space (`space`) and trusted
scoring with the cross-validation objective (`scoring`, `cv`).

Imports point down only: the core imports the typed leaves (task, space, cards, metrics,
errors, samplers) and nothing above it (`lint-imports` checks it)."""

from hyperpilot.core.executor import Executor, Job, JobResult
from hyperpilot.core.loop import StudyLoop, TrialHandle
from hyperpilot.core.proposer import CardDefaults, Proposer, StudyContext
from hyperpilot.core.space import StudySpace
from hyperpilot.core.types import Outcome, Suggestion, TrialRecord

__all__ = ["CardDefaults", "Executor", "Job", "JobResult", "Outcome", "Proposer", "StudyContext", "StudyLoop",
           "StudySpace", "Suggestion", "TrialHandle", "TrialRecord"]
