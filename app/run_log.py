"""One log line per run transition that matters, on the ``sluice.runs`` logger.

Each is logged by the code that committed the transition, after its commit (never before:
a line is a fact), with the run's id and what is known there of ``flow``, ``project``,
``job_id``, ``attempt`` and ``worker`` (inside a job's execution they come from the ids
`app.logs.bound` set). A run that fails is one line at WARNING, with its error.
"""

from __future__ import annotations

import enum
import logging
from typing import Any
from uuid import UUID

from app import logs
from app.flows.model import RunStatus
from app.jobs import Job

log = logging.getLogger("sluice.runs")

MAX_ERROR_CHARS = 2_000


class Transition(enum.StrEnum):
    ACCEPTED = "accepted"
    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"


_WARNINGS = frozenset({Transition.FAILED, Transition.TIMED_OUT})


def transition(kind: Transition, run_id: UUID | str, **fields: Any) -> None:
    """Log that run `run_id` made transition `kind` (None fields are left out)."""
    if "error" in fields and fields["error"] is not None:
        fields["error"] = one_line(str(fields["error"]))
    level = logging.WARNING if kind in _WARNINGS else logging.INFO
    message = "run timed out" if kind is Transition.TIMED_OUT else f"run {kind}"
    log.log(level, message, extra=logs.fields(transition=str(kind), run_id=str(run_id), **fields))


def ended(run_id: UUID | str, status: RunStatus, error: str | None, **fields: Any) -> None:
    """Log the end of a run at final `status`."""
    kind = {
        RunStatus.SUCCEEDED: Transition.SUCCEEDED,
        RunStatus.CANCELED: Transition.CANCELED,
        RunStatus.TIMEOUT: Transition.TIMED_OUT,
    }.get(status, Transition.FAILED)
    if kind is Transition.FAILED:
        fields["status"] = str(status)
    transition(kind, run_id, error=error, **fields)


def job_ids(job: Job) -> dict[str, Any]:
    """The ids of the job executing a run, as fields."""
    return {
        "run_id": None if job.run_id is None else str(job.run_id),
        "project": job.project_id,
        "job_id": job.id,
        "attempt": job.attempt,
        "worker": job.lease_owner,
    }


def one_line(error: str) -> str:
    """`error` on one line: a traceback stands for its last line (the exception), other
    line breaks become spaces; clipped to `MAX_ERROR_CHARS`."""
    text = error.strip()
    head, marker, trace = text.partition(_TRACEBACK)
    if marker:
        last = [line for line in trace.splitlines() if line.strip()][-1:]
        text = head + (last[0].strip() if last else marker)
    return _clip(" ".join(text.split()))


_TRACEBACK = "Traceback (most recent call last):"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
