"""The run store, control side: starting, resuming, answering and canceling runs (retries
are `app.flows.replays`'s).

The only module that runs ``app/sql/control.sql``. Every call takes the connection to run
on (and, where time matters, ``now``), so callers compose them into one transaction.

Invariants kept here and in migrations 0005 and 0006:

* A run is created together with its first job (the ``flow_runs_created`` trigger), so an
  accepted webhook is never lost: the caller acknowledges only after its commit.
* Pause and resume cannot race: a resume locks the step's waitpoint row, as a pause does. A
  resume that comes first completes the waitpoint (creating it), and the execution that
  later reaches the step finds it completed and goes on; a pause that comes first is
  completed by the resume, which then schedules the run.
* A run's terminal transition, however it happens, clears its queued jobs and pending
  waitpoints, ends its live children (cancel, timeout) and resumes a waiting parent (the
  ``flow_runs_finished`` trigger).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from app import queries
from app.flows import resume
from app.flows.model import Reply, RunStatus
from app.flows.runs import continue_run
from app.flows.stored import jsonb
from app.settings import Settings

_SQL = queries.load("control")


@dataclass(frozen=True)
class RunBudget:
    """What every new run is given: its active-time budget and its job's attempts."""

    timeout_seconds: float
    max_attempts: int
    max_live_runs: int = 10_000
    """A project with this many live runs starts no other until some end."""

    @classmethod
    def of(cls, settings: Settings) -> RunBudget:
        """SLUICE_RUN_TIMEOUT_SECONDS, SLUICE_JOB_MAX_ATTEMPTS, SLUICE_MAX_LIVE_RUNS."""
        return cls(settings.run_timeout_seconds, settings.job_max_attempts, settings.max_live_runs)


@dataclass(frozen=True)
class FlowTarget:
    """A flow that can be started: its latest version and its webhook trigger (None: it has
    none, only schedules)."""

    flow_id: UUID
    project_id: int
    name: str
    version_id: int
    version: int
    webhook: dict[str, Any] | None


async def find_webhook_flow(conn: AsyncConnection[Any], flow_id: UUID) -> FlowTarget | None:
    cur = await conn.execute(_SQL["find_webhook_flow"], {"flow_id": flow_id})
    row = await cur.fetchone()
    return None if row is None else FlowTarget(*row)


async def find_flow_by_slugs(conn: AsyncConnection[Any], project: str, flow: str) -> UUID | None:
    """The flow a stable webhook URL names (``/webhooks/{project}/{flow}``)."""
    cur = await conn.execute(_SQL["find_flow_by_slugs"], {"project": project, "flow": flow})
    row = await cur.fetchone()
    return None if row is None else UUID(str(row[0]))


async def find_flow_by_name(
    conn: AsyncConnection[Any], project_id: int, name: str
) -> FlowTarget | None:
    cur = await conn.execute(_SQL["find_flow_by_name"], {"project_id": project_id, "name": name})
    row = await cur.fetchone()
    return None if row is None else FlowTarget(*row)


@dataclass(frozen=True)
class Key:
    """A webhook request's Idempotency-Key, free again after `window_seconds`."""

    value: str
    window_seconds: float


async def start_webhook_run(
    conn: AsyncConnection[Any],
    run_id: UUID,
    flow_id: UUID,
    trigger: dict[str, Any],
    budget: RunBudget,
    *,
    key: Key | None = None,
    now: datetime | None = None,
    traceparent: str | None = None,
) -> bool:
    """Create run `run_id` and its job (taking `key`) in one statement for a live flow that
    needs no signature; False otherwise: look up the key's run (`keyed_run`), then the flow,
    to tell why. `queue.wake()` after."""
    cur = await conn.execute(
        _SQL["start_webhook_run"],
        {
            "run_id": run_id,
            "flow_id": flow_id,
            "trigger": jsonb(trigger),
            "resume_secret": resume.new_secret(),
            "timeout_seconds": budget.timeout_seconds,
            "max_attempts": budget.max_attempts,
            "max_live": budget.max_live_runs,
            **_key_params(key),
            "now": now,
            "traceparent": traceparent,
        },
    )
    return await cur.fetchone() is not None


def _key_params(key: Key | None) -> dict[str, Any]:
    return {
        "key": key.value if key else None,
        "key_window": key.window_seconds if key else 0.0,
    }


async def take_key(
    conn: AsyncConnection[Any],
    flow_id: UUID,
    key: Key,
    run_id: UUID,
    *,
    now: datetime | None = None,
) -> bool:
    """Take `key` for run `run_id`, inserted just before in the same transaction; False when
    another run has it (roll back then)."""
    cur = await conn.execute(
        _SQL["take_key"], {"flow_id": flow_id, "run_id": run_id, **_key_params(key), "now": now}
    )
    return await cur.fetchone() is not None


async def keyed_run(
    conn: AsyncConnection[Any], flow_id: UUID, key: Key, *, now: datetime | None = None
) -> UUID | None:
    """The run a request with `key` started on this flow, within the key's window."""
    cur = await conn.execute(
        _SQL["keyed_run"], {"flow_id": flow_id, **_key_params(key), "now": now}
    )
    row = await cur.fetchone()
    return None if row is None else UUID(str(row[0]))


async def forget_keys(
    conn: AsyncConnection[Any],
    window_seconds: float,
    *,
    limit: int = 1000,
    now: datetime | None = None,
) -> int:
    """Maintenance: delete up to `limit` keys older than the window; how many went."""
    cur = await conn.execute(
        _SQL["forget_keys"], {"key_window": window_seconds, "limit": limit, "now": now}
    )
    return cur.rowcount


async def create_run(
    conn: AsyncConnection[Any],
    target: FlowTarget,
    trigger: dict[str, Any],
    budget: RunBudget,
    *,
    parent_run_id: UUID | None = None,
    parent_step_key: str | None = None,
    run_id: UUID | None = None,
    depth: int = 0,
    now: datetime | None = None,
    traceparent: str | None = None,
) -> UUID:
    """Insert a QUEUED run of `target` (its job comes with it); `queue.wake()` after the
    commit. `parent_step_key`: the parent's call_flow step that waits for this run;
    `traceparent`: the trace its executions continue. Inserting
    `run_id` again changes nothing (a retry of a transaction whose answer was lost)."""
    run_id = run_id or uuid.uuid4()
    cur = await conn.execute(
        _SQL["insert_run"],
        {
            "run_id": run_id,
            "project_id": target.project_id,
            "flow_id": target.flow_id,
            "version_id": target.version_id,
            "version": target.version,
            "trigger": jsonb(trigger),
            "resume_secret": resume.new_secret(),
            "parent_run_id": parent_run_id,
            "parent_step_key": parent_step_key,
            "timeout_seconds": budget.timeout_seconds,
            "max_attempts": budget.max_attempts,
            "depth": depth,
            "now": now,
            "traceparent": traceparent,
        },
    )
    await cur.fetchone()  # none: the run was made before, by an earlier try
    return run_id


async def at_live_cap(conn: AsyncConnection[Any], project_id: int, budget: RunBudget) -> bool:
    """Whether the project has `budget.max_live_runs` live runs (a bounded count)."""
    cur = await conn.execute(
        _SQL["at_live_cap"], {"project_id": project_id, "max_live": budget.max_live_runs}
    )
    row = await cur.fetchone()
    return bool(row and row[0])


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
    conn: AsyncConnection[Any],
    run_id: UUID,
    key: str,
    kind: str,
    payload: Any,
    *,
    now: datetime | None = None,
) -> bool:
    """Complete a waitpoint and schedule its run; False when it was completed already.

    Call inside a transaction; wake the queue after the commit.
    """
    cur = await conn.execute(
        _SQL["complete_waitpoint"],
        {"run_id": run_id, "key": key, "kind": kind, "payload": jsonb(payload), "now": now},
    )
    if await cur.fetchone() is None:
        return False
    await continue_run(conn, run_id, at=now)
    return True


async def clear_response(conn: AsyncConnection[Any], run_id: UUID) -> None:
    await conn.execute(_SQL["clear_response"], {"run_id": run_id})


async def reply(conn: AsyncConnection[Any], run_id: UUID) -> Reply | None:
    cur = await conn.execute(_SQL["run_reply"], {"run_id": run_id})
    row = await cur.fetchone()
    return None if row is None else Reply(RunStatus(row[0]), row[1], row[2], row[3])


async def cancel(
    conn: AsyncConnection[Any], project_id: int, run_id: UUID, *, now: datetime | None = None
) -> bool:
    """Cancel a live run of the project; False when it is final already."""
    cur = await conn.execute(
        _SQL["cancel_run"], {"run_id": run_id, "project_id": project_id, "now": now}
    )
    return await cur.fetchone() is not None
