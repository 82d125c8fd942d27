"""Executors: where a trainer job runs.

- `SandboxExecutor` (the default of `Assistant`): every job in isolated, limited,
  killable processes, `workers` at once; untrusted trainers see only the labels they fit on.
- `InProcessExecutor`: in this process (debugging, benchmarks, tests).
- `RayExecutor`: each job a Ray task running the same sandboxed trainer on a Ray cluster
  (`connect_ray`; `import ray` happens only when one is made).
- `Sandbox` runs a job (`module:function`) in a worker inside the strongest isolation
  layers available (`layers`: bubblewrap, unshare, or rlimits + a subreaper), with caps
  (`Limits`) and a whole-tree kill on timeout; results come back as files.
- `layers.doctor()` says which layers are active on this machine (`hyperpilot doctor`);
  `warn_weak_sandbox(executor)` logs a one-line warning when trials would run in a layer
  weaker than bubblewrap (`Assistant.solve` calls it once per solve).
- `default_limits(**caps)`: the default `Limits` (with this machine's GPUs), some caps changed.
"""

from hyperpilot.sandbox.executor import SandboxedModel, SandboxExecutor, warn_weak_sandbox
from hyperpilot.sandbox.inprocess import InProcessExecutor
from hyperpilot.sandbox.limits import Limits, SandboxError
from hyperpilot.sandbox.ray_executor import RayExecutor, connect_ray
from hyperpilot.sandbox.result import SandboxResult
from hyperpilot.sandbox.runner import Sandbox, default_limits

__all__ = ["InProcessExecutor", "Limits", "RayExecutor", "Sandbox", "SandboxError", "SandboxExecutor", "SandboxResult", "SandboxedModel",
           "connect_ray", "default_limits", "warn_weak_sandbox"]
