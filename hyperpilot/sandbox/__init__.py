"""The sandbox: every trial runs in its own isolated, limited, killable process.

- `Sandbox` runs a job (`module:function`) in a worker inside the strongest isolation
  layers available (`layers`: bubblewrap, unshare, or rlimits + a subreaper), with caps
  (`Limits`) and a whole-tree kill on timeout; results come back as a file.
- `SandboxExecutor` is the `Executor` that runs every trainer through it (the default
  executor of `Assistant`).
- `layers.doctor()` says which layers are active on this machine (`hyperpilot doctor`).
"""

from hyperpilot.sandbox.executor import SandboxExecutor
from hyperpilot.sandbox.limits import Limits, SandboxError
from hyperpilot.sandbox.result import SandboxResult
from hyperpilot.sandbox.runner import Sandbox

__all__ = ["Limits", "Sandbox", "SandboxError", "SandboxExecutor", "SandboxResult"]
