from __future__ import annotations

import pytest

from worker.sandbox import Limits, StepStatus
from worker.sandbox.capture import STDERR, STDOUT, Capture
from worker.sandbox.outcome import Broken, Event, Exited, Overflow, Reply, Timeout, classify

LIMITS = Limits(wall_seconds=1.5, cpu_seconds=2, output_bytes=10)


def outcome(event: Event, *, nested: bool = False, abort: str | None = None) -> tuple[str, str]:
    capture = Capture(10)
    capture.add(STDOUT, b"out")
    capture.add(STDERR, b"err")
    result = classify(event, capture, LIMITS, 0.5, nested=nested, abort=abort)
    assert (result.stdout, result.stderr, result.duration_seconds) == ("out", "err", 0.5)
    return result.status, str(result.error)


OUTPUT = "the step wrote more than 10 bytes to stdout and stderr"
CPU = "the step used more than its CPU time limit of 2 s"
KILLED = "the sandbox process was killed by signal 9 (SIGKILL) before replying"


def exited(code: int) -> str:
    return f"the sandbox process exited with code {code} before replying"


@pytest.mark.parametrize(
    ("event", "nested", "status", "error"),
    [
        (Reply({"status": "failed", "error": "E: x"}), False, "FAILED", "E: x"),
        (Timeout(), False, "TIMEOUT", "the step ran longer than its wall time limit of 1.5 s"),
        (Overflow(), False, "LOG_SIZE_EXCEEDED", OUTPUT),
        (Exited(-24), False, "TIMEOUT", CPU),
        (Exited(152), True, "TIMEOUT", CPU),
        (Exited(3), False, "INTERNAL_ERROR", exited(3)),
        (Exited(152), False, "INTERNAL_ERROR", exited(152)),
        (Exited(-9), False, "INTERNAL_ERROR", KILLED),
        (Exited(137), True, "INTERNAL_ERROR", KILLED),
        (Broken("bad frame"), False, "INTERNAL_ERROR", "sandbox protocol error: bad frame"),
        (Reply([1]), False, "INTERNAL_ERROR", "sandbox protocol error: unexpected reply [1]"),
        (Reply({"status": "error", "error": "no"}), False, "INTERNAL_ERROR", "sandbox child: no"),
    ],
)  # fmt: skip
def test_each_ending_has_one_status(event: Event, nested: bool, status: str, error: str) -> None:
    assert outcome(event, nested=nested) == (status, error)


def test_a_success_carries_the_output_and_no_error() -> None:
    result = classify(
        Reply({"status": "succeeded", "output": [1]}), Capture(1), LIMITS, 0, nested=False
    )
    assert (result.status, result.output, result.error, result.traceback) == (
        StepStatus.SUCCEEDED,
        [1],
        None,
        None,
    )


def test_a_child_the_parent_killed_says_why() -> None:
    assert outcome(Exited(-9), abort="the pool is closing") == (
        "INTERNAL_ERROR",
        "the sandbox was killed: the pool is closing",
    )
