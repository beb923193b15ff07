"""The run store, execution side: what an execution and the maintenance pass write.

The only module that runs ``app/sql/runs.sql``. Every call takes the connection to run on,
so callers compose them into one transaction, and every time-dependent statement takes
``now`` (``None``: the database clock), so tests pass time instead of waiting.

Invariants kept here and in migrations 0005 and 0006:

* Every write of an execution is fenced on its job's lease (``sluice_lease_held``), in the
  same statement (`save_progress`, `finish_execution`) or the same transaction (the
  queue's `complete_tx` / `hold_tx`): a worker that lost its lease writes nothing.
* A run that was canceled or timed out meanwhile is never written back to RUNNING: step
  writes check the run's status, and the end of a run updates only a RUNNING run.
* Pause and resume cannot race: both lock the step's waitpoint row. Lock order, everywhere:
  run row, waitpoint, job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from app import queries
from app.flows.model import (
    LoadedRun,
    Reply,
    RunStatus,
    StepRecord,
    StepStatus,
    Waitpoint,
    Writes,
)
from app.flows.stored import jsonb, text
from app.jobs import Lease

_SQL = queries.load("runs")


async def start_run(
    conn: AsyncConnection[Any], run_id: UUID, *, now: datetime | None = None
) -> LoadedRun | None:
    """Mark a live run RUNNING and load it; None when it is final (or gone)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["start_run"], {"run_id": run_id, "now": now})
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
        depth=row["depth"],
        db_now=row["db_now"],
        steps=steps,
        waitpoints=waitpoints,
        created_at=row["created_at"],
        started_at=row["started_at"],
        first_start=row["first_start"],
        traceparent=row["traceparent"],
        allow_network=row["allow_network"],
    )


async def definition(conn: AsyncConnection[Any], version_id: int) -> dict[str, Any]:
    cur = await conn.execute(_SQL["get_definition"], {"version_id": version_id})
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"flow version {version_id} does not exist")
    document: dict[str, Any] = row[0]
    return document


async def status(conn: AsyncConnection[Any], run_id: UUID, *, lock: bool = False) -> RunStatus:
    """The run's status (gone counts as CANCELED); with `lock`, its row is locked first, as
    a pause takes it."""
    cur = await conn.execute(_SQL["lock_run" if lock else "run_status"], {"run_id": run_id})
    row = await cur.fetchone()
    return RunStatus.CANCELED if row is None else RunStatus(row[0])


def _writes_params(writes: Writes) -> dict[str, Any]:
    """Step records as one JSON array (``jsonb_to_recordset`` in the SQL): one parameter
    instead of an array per column."""
    steps = [
        {
            "key": r.key,
            "step_id": r.step_id,
            "type": r.type,
            "status": str(r.status),
            "attempts": r.attempts,
            "output": r.output,
            "error": text(r.error),
            "stdout": text(r.stdout),
            "stderr": text(r.stderr),
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        }
        for r in writes.records
    ]
    return {
        "steps": jsonb(steps),
        "response": jsonb(writes.response),
        "set_response": writes.responded,
    }


def _lease_params(lease: Lease, owner: str) -> dict[str, Any]:
    return {"job_id": lease.job_id, "attempt": lease.attempt, "owner": owner}


async def record(conn: AsyncConnection[Any], run_id: UUID, writes: Writes) -> None:
    """Record `writes` inside the caller's transaction, whose fence the caller checked."""
    if writes:
        await conn.execute(_SQL["record_steps"], {"run_id": run_id, **_writes_params(writes)})


@dataclass(frozen=True)
class Progress:
    held: bool
    """The lease held, and the writes were recorded."""
    status: RunStatus
    """The run's status after the statement (a cancel or timeout shows here)."""


async def save_progress(
    conn: AsyncConnection[Any],
    lease: Lease,
    owner: str,
    *,
    lease_seconds: float,
    run_id: UUID,
    writes: Writes,
    now: datetime | None = None,
) -> Progress:
    """Renew the lease and, if it held, record `writes` (one statement)."""
    cur = await conn.execute(
        _SQL["save_progress"],
        {
            **_lease_params(lease, owner),
            "lease_seconds": lease_seconds,
            "run_id": run_id,
            **_writes_params(writes),
            "now": now,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return Progress(bool(row[0]), RunStatus.CANCELED if row[1] is None else RunStatus(row[1]))


@dataclass(frozen=True)
class Finished:
    held: bool
    """False: the lease was lost and nothing was written."""
    reply: Reply | None
    """The run's reply as committed; None when it had ended otherwise (a cancel)."""
    gated: bool
    """The run's project has a concurrency limit: its freed slot may let a queued job run."""


async def finish_execution(
    conn: AsyncConnection[Any],
    lease: Lease,
    owner: str,
    *,
    run_id: UUID,
    status: RunStatus,
    output: Any,
    error: str | None,
    writes: Writes,
    now: datetime | None = None,
) -> Finished:
    """Delete the job, record the last results and end the run, in one statement."""
    cur = await conn.execute(
        _SQL["finish_execution"],
        {
            **_lease_params(lease, owner),
            "run_id": run_id,
            "status": str(status),
            "output": jsonb(output),
            "error": text(error),
            **_writes_params(writes),
            "now": now,
        },
    )
    row = await cur.fetchone()
    if row is None or not row[0]:
        return Finished(False, None, False)
    reply = Reply(status, row[2], output, error) if row[1] else None
    return Finished(True, reply, bool(row[4]))


async def pause_run(
    conn: AsyncConnection[Any],
    run_id: UUID,
    *,
    expires: bool,
    ttl_seconds: float,
    now: datetime | None = None,
) -> bool:
    cur = await conn.execute(
        _SQL["pause_run"],
        {"run_id": run_id, "expires": expires, "ttl_seconds": ttl_seconds, "now": now},
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
    now: datetime | None = None,
) -> LockedWaitpoint:
    """The step's waitpoint, created if missing, locked until the transaction ends."""
    params = {
        "run_id": run_id,
        "key": key,
        "kind": kind,
        "resume_in_seconds": resume_in_seconds,
        "child_run_id": child_run_id,
        "now": now,
    }
    await conn.execute(_SQL["ensure_waitpoint"], params)
    cur = await conn.execute(_SQL["lock_waitpoint"], params)
    row = await cur.fetchone()
    assert row is not None
    return LockedWaitpoint(row[0], row[1], row[2], row[3], bool(row[4]))


async def close_waitpoint(
    conn: AsyncConnection[Any], run_id: UUID, key: str, *, now: datetime | None = None
) -> None:
    await conn.execute(_SQL["close_waitpoint"], {"run_id": run_id, "key": key, "now": now})


async def continue_run(
    conn: AsyncConnection[Any], run_id: UUID, *, at: datetime | None = None
) -> None:
    """Schedule the run's execution at `at` (now by default), unless it is final or its job
    is running (that execution will find what changed)."""
    await conn.execute(_SQL["continue_run"], {"run_id": run_id, "at": at})


@dataclass(frozen=True)
class Expired:
    run_id: UUID
    was: RunStatus
    project_id: int | None = field(default=None, compare=False)
    flow_name: str | None = field(default=None, compare=False)
    error: str | None = field(default=None, compare=False)


async def expire_runs(
    conn: AsyncConnection[Any], *, limit: int = 1000, now: datetime | None = None
) -> list[Expired]:
    """Time out runs past their deadline or paused past the TTL."""
    cur = await conn.execute(_SQL["expire_runs"], {"limit": limit, "now": now})
    return [
        Expired(UUID(str(row[0])), RunStatus(row[1]), row[2], row[3], row[4])
        for row in await cur.fetchall()
    ]
