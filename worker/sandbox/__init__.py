"""Running users' step code in contained child processes.

``async with SandboxPool(resolve_mode(None)) as pool: result = await pool.run(project, request)``.
The child side (``child.py``, ``protocol.py``) uses the standard library only and is started by
file path, so nothing imported here is loaded into a child.
"""

from __future__ import annotations

from worker.sandbox.mode import SandboxMode, resolve_mode
from worker.sandbox.pool import SandboxPool
from worker.sandbox.step import Limits, StepRequest, StepResult, StepStatus

__all__ = [
    "Limits",
    "SandboxMode",
    "SandboxPool",
    "StepRequest",
    "StepResult",
    "StepStatus",
    "resolve_mode",
]
