"""What a sandboxed step is asked to do and what comes back.

Invariant: every step ends in exactly one `StepStatus`, whatever the step code did; the statuses
are the run statuses of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-step limits. Wall time and output are enforced by the parent; the rest are rlimits
    the child sets on itself before any step code runs."""

    wall_seconds: float = 30.0
    cpu_seconds: int = 30
    memory_bytes: int = 512 * MiB
    output_bytes: int = 1 * MiB
    """stdout and stderr together."""
    processes: int = 64
    """Processes and threads of the sandbox, the child included."""
    open_files: int = 256

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")
        if self.processes < 2:
            raise ValueError("Limits.processes must be at least 2")
        if self.open_files < 16:
            raise ValueError("Limits.open_files must be at least 16")


@dataclass(frozen=True)
class StepRequest:
    code: str
    """Python source defining ``def run(input, ctx)``."""
    input: Any
    ctx: dict[str, Any]
    limits: Limits
    extra_paths: Sequence[str] = ()
    """Directories prepended to the child's ``sys.path`` (installed requirements)."""
    network: bool = False
    """Reach public addresses through the egress proxy (bwrap mode only)."""


class StepStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    LOG_SIZE_EXCEEDED = "LOG_SIZE_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


@dataclass(frozen=True)
class StepResult:
    status: StepStatus
    output: Any
    error: str | None
    traceback: str | None
    stdout: str
    stderr: str
    duration_seconds: float

    @property
    def succeeded(self) -> bool:
        return self.status is StepStatus.SUCCEEDED
