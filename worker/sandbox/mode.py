"""How step code is isolated, and the choice of a default.

Invariant: the default is the strongest mode that works on this host (bwrap, proven by running
it), and falling back to a weaker one is said once, as a warning.
"""

from __future__ import annotations

import functools
import logging
from enum import StrEnum

from worker.sandbox import bwrap

logger = logging.getLogger(__name__)


class SandboxMode(StrEnum):
    BWRAP = "bwrap"
    """bubblewrap namespaces (no network, only the interpreter's files and the step's own
    requirements, own PIDs and uid) plus rlimits."""
    PROCESS = "process"
    """A plain child process with rlimits (and its own uid when the worker is root)."""
    NONE = "none"
    """In the worker process, with no isolation and no limits: development only."""


def resolve_mode(requested: str | None) -> SandboxMode:
    """`requested` if given (bwrap must then work), else bwrap if it works, else process."""
    if requested is None:
        return _default()
    mode = SandboxMode(requested)
    if mode is SandboxMode.BWRAP and (reason := bwrap.problem()) is not None:
        raise RuntimeError(f"sandbox mode 'bwrap' was requested but cannot be used: {reason}")
    return mode


@functools.cache
def _default() -> SandboxMode:
    reason = bwrap.problem()
    if reason is None:
        return SandboxMode.BWRAP
    logger.warning(
        "bubblewrap is not usable (%s): step code will run in mode 'process' "
        "(rlimits only: it can reach the network and sees the filesystem)",
        reason,
    )
    return SandboxMode.PROCESS
