"""The run store: creating, executing, pausing, resuming and ending flow runs.

The only module that runs ``app/sql/runs.sql``. Like the queue, every call takes the
connection to run on, so callers compose them into one transaction.

Invariants kept here and in migration 0005:

* A run is created together with its first job (`create_run` inside the caller's
  transaction), so an accepted webhook is never lost.
* Pause and resume cannot race: both lock the step's waitpoint row. A resume that comes
  first completes the waitpoint (creating it), and the execution that later reaches the step
  finds it completed and goes on; a pause that comes first is completed by the resume, which
  then schedules the run. Lock order, everywhere: run row, waitpoint, job.
* A run's terminal transition, however it happens, clears its queued jobs and pending
  waitpoints, ends its live children (cancel, timeout) and resumes a waiting parent (the
  ``flow_runs_finished`` trigger).
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app import queries
from app.flows import resume
from app.jobs import Lease, NewJob, Queue

_SQL = queries.load("runs")

# PostgreSQL cannot store NUL in text or jsonb: it is replaced by U+FFFD (an escaped NUL in
# JSON text is one preceded by an even number of backslashes).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _json(value: Any) -> Jsonb:
    """`value` as a jsonb parameter that PostgreSQL accepts (NUL characters replaced)."""
    return Jsonb(value, dumps=_dumps)


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


EXECUTE_RUN = "execute_run"
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


def execute_job(run_id: UUID, project_id: int, *, run_at: datetime | None = None) -> NewJob:
    """The job that executes (or continues) a run; at most one is live per run."""
    return NewJob(
        kind=EXECUTE_RUN,
        payload={"run_id": str(run_id)},
        project_id=project_id,
        run_id=run_id,
        run_at=run_at,
        idempotency_key=f"run:{run_id}",
    )


@dataclass(frozen=True)
class FlowTarget:
    """A flow that can be started: its latest version and its webhook secret."""

    flow_id: UUID
    project_id: int
    name: str
    version_id: int
    version: int
    secret: str | None


async def find_webhook_flow(conn: AsyncConnection[Any], flow_id: UUID) -> FlowTarget | None:
    cur = await conn.execute(_SQL["find_webhook_flow"], {"flow_id": flow_id})
    row = await cur.fetchone()
    return None if row is None else FlowTarget(*row)


async def find_flow_by_name(
    conn: AsyncConnection[Any], project_id: int, name: str
) -> FlowTarget | None:
    cur = await conn.execute(_SQL["find_flow_by_name"], {"project_id": project_id, "name": name})
    row = await cur.fetchone()
    return None if row is None else FlowTarget(*row)


async def start_webhook_run(
    conn: AsyncConnection[Any],
    run_id: UUID,
    flow_id: UUID,
    trigger: dict[str, Any],
    *,
    timeout_seconds: float,
    max_attempts: int,
) -> bool:
    """Create run `run_id` and its job in one statement for a live flow that needs no
    signature; False otherwise (look the flow up to tell why). `queue.wake()` after."""
    cur = await conn.execute(
        _SQL["start_webhook_run"],
        {
            "run_id": run_id,
            "flow_id": flow_id,
            "trigger": _json(trigger),
            "resume_secret": resume.new_secret(),
            "timeout_seconds": timeout_seconds,
            "max_attempts": max_attempts,
        },
    )
    return await cur.fetchone() is not None


async def create_run(
    conn: AsyncConnection[Any],
    queue: Queue,
    target: FlowTarget,
    trigger: dict[str, Any],
    *,
    timeout_seconds: float,
    parent_run_id: UUID | None = None,
    parent_step_key: str | None = None,
    run_id: UUID | None = None,
) -> UUID:
    """Insert a QUEUED run and its job; call inside a transaction, `queue.wake()` after."""
    cur = await conn.execute(
        _SQL["insert_run"],
        {
            "run_id": run_id or uuid.uuid4(),
            "project_id": target.project_id,
            "flow_id": target.flow_id,
            "version_id": target.version_id,
            "version": target.version,
            "trigger": _json(trigger),
            "resume_secret": resume.new_secret(),
            "parent_run_id": parent_run_id,
            "parent_step_key": parent_step_key,
            "timeout_seconds": timeout_seconds,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    run_id = UUID(str(row[0]))
    await queue.enqueue(conn, execute_job(run_id, target.project_id))
    return run_id


# --- executing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
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
    key: str
    kind: str
    state: str
    resume_at: datetime | None
    child_run_id: UUID | None
    payload: Any


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
    db_now: datetime
    steps: dict[str, StepRecord]
    waitpoints: dict[str, Waitpoint]


async def start_run(conn: AsyncConnection[Any], run_id: UUID) -> LoadedRun | None:
    """Mark a live run RUNNING and load it; None when it is final (or gone)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["start_run"], {"run_id": run_id})
        row = await cur.fetchone()
    if row is None:
        return None
    steps = {
        s["key"]: StepRecord(
            key=s["key"],
            step_id="",
            type="",
            status=StepStatus(s["status"]),
            attempts=s["attempts"],
            output=s["output"],
            error=s["error"],
        )
        for s in row["steps"]
    }
    waitpoints = {
        w["key"]: Waitpoint(
            key=w["key"],
            kind=w["kind"],
            state=w["state"],
            resume_at=datetime.fromisoformat(w["resume_at"]) if w["resume_at"] else None,
            child_run_id=UUID(w["child_run_id"]) if w["child_run_id"] else None,
            payload=w["payload"],
        )
        for w in row["waitpoints"]
    }
    return LoadedRun(
        id=row["id"],
        project_id=row["project_id"],
        flow_id=row["flow_id"],
        flow_name=row["flow_name"],
        flow_version_id=row["flow_version_id"],
        version=row["version"],
        trigger=row["trigger"],
        resume_secret=bytes(row["resume_secret"]),
        parent_run_id=row["parent_run_id"],
        deadline_at=row["deadline_at"],
        db_now=row["db_now"],
        steps=steps,
        waitpoints=waitpoints,
    )


async def definition(conn: AsyncConnection[Any], version_id: int) -> dict[str, Any]:
    cur = await conn.execute(_SQL["get_definition"], {"version_id": version_id})
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"flow version {version_id} does not exist")
    document: dict[str, Any] = row[0]
    return document


async def status(conn: AsyncConnection[Any], run_id: UUID, *, lock: bool = False) -> RunStatus:
    cur = await conn.execute(_SQL["lock_run" if lock else "run_status"], {"run_id": run_id})
    row = await cur.fetchone()
    return RunStatus.CANCELED if row is None else RunStatus(row[0])


def _steps_params(records: Sequence[StepRecord]) -> dict[str, Any]:
    """Step records as one JSON array (``jsonb_to_recordset`` in the SQL): one parameter
    instead of an array per column."""
    return {
        "steps": _json(
            [
                {
                    "key": r.key,
                    "step_id": r.step_id,
                    "type": r.type,
                    "status": str(r.status),
                    "attempts": r.attempts,
                    "output": r.output,
                    "error": _text(r.error),
                    "stdout": _text(r.stdout),
                    "stderr": _text(r.stderr),
                    "started_at": r.started_at.isoformat() if r.started_at else None,
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                }
                for r in records
            ]
        )
    }


async def record_steps(
    conn: AsyncConnection[Any], run_id: UUID, records: Sequence[StepRecord]
) -> None:
    if not records:
        return
    await conn.execute(_SQL["upsert_step_runs"], {"run_id": run_id, **_steps_params(records)})


@dataclass(frozen=True)
class Finished:
    reply: Reply | None
    """The run's reply as committed; None when it had ended otherwise (a cancel)."""
    gated: bool
    """The run's project has a concurrency limit: its freed slot may let a queued job run."""


class LeaseLostError(Exception):
    """A fenced write found the job no longer held by this owner and attempt."""


def _lease_params(lease: Lease, owner: str) -> dict[str, Any]:
    return {"job_id": lease.job_id, "attempt": lease.attempt, "owner": owner}


async def save_progress(
    conn: AsyncConnection[Any],
    lease: Lease,
    owner: str,
    *,
    lease_seconds: float,
    run_id: UUID,
    records: Sequence[StepRecord],
    response: Any = None,
    set_response: bool = False,
) -> tuple[bool, RunStatus]:
    """Renew the lease and, if it held, record results (one statement). Returns whether the
    lease held and the run's status."""
    cur = await conn.execute(
        _SQL["save_progress"],
        {
            **_lease_params(lease, owner),
            "lease_seconds": lease_seconds,
            "run_id": run_id,
            **_steps_params(records),
            "response": _json(response),
            "set_response": set_response,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return bool(row[0]), RunStatus.CANCELED if row[1] is None else RunStatus(row[1])


async def finish_execution(
    conn: AsyncConnection[Any],
    lease: Lease,
    owner: str,
    *,
    run_id: UUID,
    status: RunStatus,
    output: Any,
    error: str | None,
    records: Sequence[StepRecord],
    response: Any = None,
    set_response: bool = False,
) -> Finished:
    """Delete the job, record the last results and end the run, in one statement.

    Raises `LeaseLostError` (and writes nothing) when the lease was lost."""
    cur = await conn.execute(
        _SQL["finish_execution"],
        {
            **_lease_params(lease, owner),
            "run_id": run_id,
            "status": str(status),
            "output": _json(output),
            "error": _text(error),
            **_steps_params(records),
            "response": _json(response),
            "set_response": set_response,
        },
    )
    row = await cur.fetchone()
    if row is None or not row[0]:
        raise LeaseLostError(f"job {lease.job_id} attempt {lease.attempt}")
    reply = Reply(status, row[2], output, error) if row[1] else None
    return Finished(reply, bool(row[4]))


async def set_response(conn: AsyncConnection[Any], run_id: UUID, response: Any) -> None:
    await conn.execute(_SQL["set_response"], {"run_id": run_id, "response": _json(response)})


async def pause_run(
    conn: AsyncConnection[Any], run_id: UUID, *, expires: bool, ttl_seconds: float
) -> bool:
    cur = await conn.execute(
        _SQL["pause_run"],
        {"run_id": run_id, "expires": expires, "ttl_seconds": ttl_seconds},
    )
    return await cur.fetchone() is not None


@dataclass(frozen=True)
class LockedWaitpoint:
    state: str
    resume_at: datetime | None
    child_run_id: UUID | None
    payload: Any
    due: bool
    """Its resume_at has passed (a delay is over, a wait timed out)."""

    @property
    def completed(self) -> bool:
        return self.state == "completed"


async def lock_waitpoint(
    conn: AsyncConnection[Any],
    run_id: UUID,
    key: str,
    *,
    kind: str,
    resume_in_seconds: float | None = None,
    child_run_id: UUID | None = None,
) -> LockedWaitpoint:
    """The step's waitpoint, created if missing, locked until the transaction ends."""
    params = {
        "run_id": run_id,
        "key": key,
        "kind": kind,
        "resume_in_seconds": resume_in_seconds,
        "child_run_id": child_run_id,
    }
    await conn.execute(_SQL["ensure_waitpoint"], params)
    cur = await conn.execute(_SQL["lock_waitpoint"], params)
    row = await cur.fetchone()
    assert row is not None
    return LockedWaitpoint(row[0], row[1], row[2], row[3], bool(row[4]))


async def close_waitpoint(conn: AsyncConnection[Any], run_id: UUID, key: str) -> None:
    await conn.execute(_SQL["close_waitpoint"], {"run_id": run_id, "key": key})


# --- resuming, answering, canceling, retrying (the app's side) ----------------------------


@dataclass(frozen=True)
class ResumeTarget:
    id: UUID
    project_id: int
    status: RunStatus
    resume_secret: bytes


async def resume_target(conn: AsyncConnection[Any], run_id: UUID) -> ResumeTarget | None:
    cur = await conn.execute(_SQL["resume_target"], {"run_id": run_id})
    row = await cur.fetchone()
    if row is None:
        return None
    return ResumeTarget(row[0], row[1], RunStatus(row[2]), bytes(row[3]))


async def complete_waitpoint(
    conn: AsyncConnection[Any], run_id: UUID, key: str, kind: str, payload: Any
) -> bool:
    """Complete a waitpoint and schedule its run; False when it was completed already.

    Call inside a transaction; wake the queue after the commit.
    """
    cur = await conn.execute(
        _SQL["complete_waitpoint"],
        {"run_id": run_id, "key": key, "kind": kind, "payload": _json(payload)},
    )
    if await cur.fetchone() is None:
        return False
    await continue_run(conn, run_id)
    return True


async def continue_run(conn: AsyncConnection[Any], run_id: UUID) -> None:
    """Schedule the run's execution now, unless it is final or its job is running."""
    await conn.execute(_SQL["continue_run"], {"run_id": run_id})


async def clear_response(conn: AsyncConnection[Any], run_id: UUID) -> None:
    await conn.execute(_SQL["clear_response"], {"run_id": run_id})


@dataclass(frozen=True)
class Reply:
    status: RunStatus
    response: dict[str, Any] | None
    output: Any
    error: str | None


async def reply(conn: AsyncConnection[Any], run_id: UUID) -> Reply | None:
    cur = await conn.execute(_SQL["run_reply"], {"run_id": run_id})
    row = await cur.fetchone()
    return None if row is None else Reply(RunStatus(row[0]), row[1], row[2], row[3])


async def cancel(conn: AsyncConnection[Any], project_id: int, run_id: UUID) -> bool:
    """Cancel a live run of the project; False when it is final already."""
    cur = await conn.execute(_SQL["cancel_run"], {"run_id": run_id, "project_id": project_id})
    return await cur.fetchone() is not None


async def retry(
    conn: AsyncConnection[Any],
    queue: Queue,
    project_id: int,
    run_id: UUID,
    *,
    timeout_seconds: float,
) -> bool:
    """Queue a failed run again from its failed step; False when it is not in a failed
    state. Call inside a transaction; wake the queue after the commit."""
    cur = await conn.execute(
        _SQL["retry_run"],
        {"run_id": run_id, "project_id": project_id, "timeout_seconds": timeout_seconds},
    )
    if await cur.fetchone() is None:
        return False
    await queue.enqueue(conn, execute_job(run_id, project_id))
    return True


@dataclass(frozen=True)
class Expired:
    run_id: UUID
    was: RunStatus


async def expire_runs(conn: AsyncConnection[Any], *, limit: int = 1000) -> list[Expired]:
    """Time out runs past their deadline or paused past the TTL."""
    cur = await conn.execute(_SQL["expire_runs"], {"limit": limit})
    return [Expired(UUID(str(row[0])), RunStatus(row[1])) for row in await cur.fetchall()]
