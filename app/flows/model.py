"""The vocabulary of runs, shared by the app, the worker and the run store: statuses, the
records an execution writes and reads, and the channels that announce them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

EXECUTE_RUN = "execute_run"
"""The job kind that executes (or continues) a run; at most one is live per run."""
RUN_EVENTS_CHANNEL = "sluice_runs"
"""Payload: run ids (comma-separated) whose reply or status changed; wakes sync callers."""
CANCEL_CHANNEL = "sluice_run_cancel"
"""Payload: run ids that were canceled or timed out; the worker executing one stops it."""


class RunStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELED = "CANCELED"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    LOG_SIZE_EXCEEDED = "LOG_SIZE_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def final(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)


class StepStatus(enum.StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PAUSED = "PAUSED"
    RETRYING = "RETRYING"
    TIMEOUT = "TIMEOUT"
    CANCELED = "CANCELED"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    LOG_SIZE_EXCEEDED = "LOG_SIZE_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def unfinished(self) -> bool:
        """The step has not ended: a replay runs it (again)."""
        return self in (StepStatus.PAUSED, StepStatus.RETRYING)


@dataclass(frozen=True)
class StepRecord:
    """One step instance as recorded: `key` is unique within the run (the step id; inside
    loops prefixed by the iterations, ``each[2].notify``)."""

    key: str
    step_id: str
    type: str
    status: StepStatus
    attempts: int = 1
    output: Any = None
    error: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Waitpoint:
    """Where a run pauses: a delay, a wait for its resume URL, or a wait for a child run."""

    key: str
    kind: str
    state: str
    resume_at: datetime | None
    child_run_id: UUID | None
    payload: Any

    @property
    def completed(self) -> bool:
        return self.state == "completed"


@dataclass(frozen=True)
class LoadedRun:
    """A run as an execution starts it: RUNNING, with what earlier executions recorded."""

    id: UUID
    project_id: int
    flow_id: UUID
    flow_name: str
    flow_version_id: int
    version: int
    trigger: dict[str, Any]
    resume_secret: bytes
    parent_run_id: UUID | None
    deadline_at: datetime | None
    depth: int
    """0 for a run a webhook started; its caller's depth + 1 for a sub-flow's."""
    db_now: datetime
    steps: dict[str, StepRecord]
    waitpoints: dict[str, Waitpoint]
    allow_network: bool = True
    """The project's: whether its code steps may ask for network."""
    created_at: datetime | None = None
    started_at: datetime | None = None
    """When its first execution began (this one, if `first_start`)."""
    first_start: bool = False
    traceparent: str | None = None
    """The W3C trace context its executions continue (None: tracing was off)."""


@dataclass(frozen=True)
class Writes:
    """What an execution has to record: step results, and the reply if a respond step set
    one (`responded`) since the last commit."""

    records: tuple[StepRecord, ...] = ()
    response: dict[str, Any] | None = None
    responded: bool = False

    def __bool__(self) -> bool:
        return bool(self.records) or self.responded

    def adding(self, *records: StepRecord) -> Writes:
        return Writes((*self.records, *records), self.response, self.responded)


@dataclass(frozen=True)
class Reply:
    """What a sync caller waits for: the reply a respond step set, or the run's end."""

    status: RunStatus
    response: dict[str, Any] | None
    output: Any
    error: str | None

    @property
    def ready(self) -> bool:
        return self.response is not None or self.status.final
