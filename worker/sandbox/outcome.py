"""How a step ended, as the parent saw it, and the StepResult that follows.

Invariant: each way a step can end maps to exactly one status. A reply says what the step code
did; the wall clock, the output cap and the child's death are the parent's own observations; a
death by SIGXCPU (the CPU rlimit) is a TIMEOUT, any other death or malformed reply is an
INTERNAL_ERROR that says what happened.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from worker.sandbox.capture import STDERR, STDOUT, Capture
from worker.sandbox.step import Limits, StepResult, StepStatus


@dataclass(frozen=True)
class Reply:
    message: Any


@dataclass(frozen=True)
class Exited:
    returncode: int


@dataclass(frozen=True)
class Broken:
    """Garbage on the protocol, a reply nobody asked for, a reply pipe closed early."""

    reason: str


class Overflow:
    pass


class Timeout:
    pass


Event = Reply | Exited | Broken | Overflow | Timeout

HEALTHY = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.MEMORY_LIMIT_EXCEEDED)
"""Replied outcomes after which the child is intact (though only success lets it be reused)."""


def classify(
    event: Event,
    capture: Capture,
    limits: Limits,
    duration: float,
    *,
    nested: bool,
    abort: str | None = None,
) -> StepResult:
    """The result of a step that ended with `event`. `nested`: the exit status is bwrap's, which
    reports its child's death by signal N as 128 + N. `abort`: why the parent killed the child."""

    def result(
        status: StepStatus, error: str | None, traceback: Any = None, output: Any = None
    ) -> StepResult:
        return StepResult(
            status=status,
            output=output,
            error=error,
            traceback=None if traceback is None else str(traceback),
            stdout=capture.text(STDOUT),
            stderr=capture.text(STDERR),
            duration_seconds=duration,
        )

    match event:
        case Reply({"status": "succeeded", **reply}):
            return result(StepStatus.SUCCEEDED, None, output=reply.get("output"))
        case Reply({"status": "failed", **reply}):
            return result(StepStatus.FAILED, str(reply.get("error")), reply.get("traceback"))
        case Reply({"status": "memory", **reply}):
            error = f"the step exceeded its memory limit of {limits.memory_bytes} bytes"
            return result(
                StepStatus.MEMORY_LIMIT_EXCEEDED,
                f"{error} ({reply.get('error')})",
                reply.get("traceback"),
            )
        case Reply({"status": "error", **reply}):
            return result(StepStatus.INTERNAL_ERROR, f"sandbox child: {reply.get('error')}")
        case Reply(message):
            error = f"sandbox protocol error: unexpected reply {str(message)[:200]}"
            return result(StepStatus.INTERNAL_ERROR, error)
        case Timeout():
            error = f"the step ran longer than its wall time limit of {limits.wall_seconds:g} s"
            return result(StepStatus.TIMEOUT, error)
        case Overflow():
            error = f"the step wrote more than {limits.output_bytes} bytes to stdout and stderr"
            return result(StepStatus.LOG_SIZE_EXCEEDED, error)
        case Broken(reason):
            return result(StepStatus.INTERNAL_ERROR, f"sandbox protocol error: {reason}")
        case Exited(returncode):
            if abort is not None:
                return result(StepStatus.INTERNAL_ERROR, f"the sandbox was killed: {abort}")
            number = signal_number(returncode, nested=nested)
            if number == signal.SIGXCPU:
                error = f"the step used more than its CPU time limit of {limits.cpu_seconds} s"
                return result(StepStatus.TIMEOUT, error)
            return result(StepStatus.INTERNAL_ERROR, describe_exit(returncode, nested=nested))
    raise AssertionError(event)  # pragma: no cover


def signal_number(returncode: int, *, nested: bool) -> int | None:
    if returncode < 0:
        return -returncode
    if nested and returncode > 128:
        return returncode - 128
    return None


def describe_exit(returncode: int, *, nested: bool) -> str:
    number = signal_number(returncode, nested=nested)
    if number is None:
        return f"the sandbox process exited with code {returncode} before replying"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown"
    return f"the sandbox process was killed by signal {number} ({name}) before replying"
