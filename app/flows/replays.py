"""The run store, replay side: retrying a run on its pinned or the live version and from a
chosen step, replaying a finished run as a new one, and bulk retries in batches.

The only module that runs ``app/sql/replay.sql``. Like `app.flows.control`, every call
takes the connection to run on, so callers compose them into one transaction; wake the
queue after the commit.

Invariants kept here and in migration 0013:

* A retry keeps every recorded success before `from_step` (the engine skips a step whose
  record is a success), and forgets the records of `from_step`, the steps after it in
  document order and the steps enclosing it, so they run again.
* "latest" is the version the view ``sluice_live_flows`` names, never the highest number.
* A bulk retry marks each run it queues with its batch id in the same statement, and takes
  only unmarked runs: a run is retried once per batch, even when the batch's job runs
  again after a crash, and a run that fails again is not taken a second time.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from app import queries
from app.flows import resume
from app.flows.control import RunBudget
from app.flows.definition import parse_flow
from app.flows.model import RunStatus
from app.flows.runs import continue_run
from app.flows.stored import jsonb

_SQL = queries.load("replay")

RETRY_RUNS = "retry_runs"
"""The job kind of a bulk retry: its payload is a `BulkRetry`."""
BATCH_SIZE = 50
"""Runs a bulk retry queues again per transaction."""
MAX_COUNTED = 100_000
"""A bulk retry's count stops here (a bounded count)."""


class Version(enum.StrEnum):
    PINNED = "pinned"
    """The version the run started with."""
    LATEST = "latest"
    """The flow's live version (``sluice_live_flows``)."""


class UnknownStep(ValueError):
    """`from_step` names no step of the version the retry would run."""


@dataclass(frozen=True)
class Retried:
    """A retry's outcome: `status` is the run's status when it was not retried (None: no
    such run of the project)."""

    retried: bool
    status: RunStatus | None = None


def steps_from(definition: Any, from_step: str) -> list[str]:
    """The ids of `from_step`, the steps after it in document order and those enclosing it
    (a branch or loop), which a retry from `from_step` runs again."""
    walked = [(path, step.id) for path, step in parse_flow(definition).iter_steps()]
    at = next((i for i, (_, step_id) in enumerate(walked) if step_id == from_step), None)
    if at is None:
        raise UnknownStep(from_step)
    path = walked[at][0]
    enclosing = [step_id for here, step_id in walked[:at] if path.startswith(f"{here}.")]
    return enclosing + [step_id for _, step_id in walked[at:]]


async def retry(
    conn: AsyncConnection[Any],
    project_id: int,
    run_id: UUID,
    budget: RunBudget,
    *,
    version: Version = Version.PINNED,
    from_step: str | None = None,
    now: datetime | None = None,
) -> Retried:
    """Queue a failed run again on `version`, from `from_step` (None: from its failed step).
    Raises UnknownStep. Call inside a transaction; wake the queue after the commit."""
    latest = version is Version.LATEST
    cur = await conn.execute(
        _SQL["retry_plan"], {"run_id": run_id, "project_id": project_id, "latest": latest}
    )
    plan = await cur.fetchone()
    if plan is None:
        return Retried(False)
    status, retryable, version_id, _, definition = plan
    forget = steps_from(definition, from_step) if from_step is not None else []
    if not retryable:
        return Retried(False, RunStatus(status))
    requeued = await requeue(
        conn, project_id, [run_id], budget, version_id=version_id, forget_steps=forget, now=now
    )
    return Retried(True) if requeued else Retried(False, RunStatus(status))


async def requeue(
    conn: AsyncConnection[Any],
    project_id: int,
    run_ids: list[UUID],
    budget: RunBudget,
    *,
    version_id: int | None = None,
    latest: bool = False,
    forget_steps: list[str] | None = None,
    batch: UUID | None = None,
    now: datetime | None = None,
) -> list[UUID]:
    """Queue those of `run_ids` that failed again and schedule their executions; the ones
    queued. `version_id` (or, with `latest`, the live version; else their own) is what they
    run; `batch` marks them as a bulk retry's."""
    cur = await conn.execute(
        _SQL["requeue_runs"],
        {
            "run_ids": run_ids,
            "project_id": project_id,
            "version_id": version_id,
            "latest": latest,
            "forget_steps": forget_steps or [],
            "batch": batch,
            "timeout_seconds": budget.timeout_seconds,
            "max_attempts": budget.max_attempts,
            "now": now,
        },
    )
    queued = [UUID(str(row[0])) for row in await cur.fetchall()]
    for each in queued:
        await continue_run(conn, each, at=now)
    return queued


@dataclass(frozen=True)
class Replayed:
    """A replay's outcome: the new run's id, or (None) the original's status when it has
    not ended (`status` None too: no such run of the project, unless `at_cap`: the project
    has `max_live_runs` live runs)."""

    run_id: UUID | None
    status: RunStatus | None = None
    at_cap: bool = False


_NO_BODY = object()


async def replay(
    conn: AsyncConnection[Any],
    project_id: int,
    run_id: UUID,
    budget: RunBudget,
    *,
    version: Version = Version.PINNED,
    body: Any = _NO_BODY,
    now: datetime | None = None,
) -> Replayed:
    """Start a new run of a finished run's flow with its trigger (its body replaced by
    `body` when given), on `version`, linked to it by ``replay_of`` — unless the project
    has `budget.max_live_runs` live runs."""
    cur = await conn.execute(
        _SQL["replay_source"],
        {"run_id": run_id, "project_id": project_id, "latest": version is Version.LATEST},
    )
    source = await cur.fetchone()
    if source is None:
        return Replayed(None)
    status, finished, trigger, _, flow_id, version_id, version_number = source
    if not finished:
        return Replayed(None, RunStatus(status))
    if body is not _NO_BODY:
        trigger = {key: value for key, value in trigger.items() if key != "raw_body"}
        trigger["body"] = body
    new_id = uuid.uuid4()
    cur = await conn.execute(
        _SQL["insert_replay"],
        {
            "run_id": new_id,
            "project_id": project_id,
            "flow_id": flow_id,
            "version_id": version_id,
            "version": version_number,
            "trigger": jsonb(trigger),
            "resume_secret": resume.new_secret(),
            "timeout_seconds": budget.timeout_seconds,
            "max_attempts": budget.max_attempts,
            "replay_of": run_id,
            "max_live": budget.max_live_runs,
            "now": now,
        },
    )
    if await cur.fetchone() is None:
        return Replayed(None, RunStatus(status), at_cap=True)
    return Replayed(new_id)


@dataclass(frozen=True)
class BulkRetry:
    """A bulk retry's filter, fixed when it is accepted: runs of the project (of `flow_id`
    when given) in `status`, created in [since, until). `until` is never later than the
    acceptance, so runs that fail later are not taken."""

    batch: UUID
    project_id: int
    flow_id: UUID | None
    status: RunStatus
    since: datetime | None
    until: datetime
    latest: bool

    def params(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "project_id": self.project_id,
            "flow_id": self.flow_id,
            "status": str(self.status),
            "since": self.since,
            "until": self.until,
        }

    def payload(self) -> dict[str, Any]:
        """As a job's JSON payload."""
        return {
            "batch": str(self.batch),
            "project_id": self.project_id,
            "flow_id": None if self.flow_id is None else str(self.flow_id),
            "status": str(self.status),
            "since": None if self.since is None else self.since.isoformat(),
            "until": self.until.isoformat(),
            "latest": self.latest,
        }

    @classmethod
    def of(cls, payload: dict[str, Any]) -> BulkRetry:
        since = payload.get("since")
        return cls(
            UUID(payload["batch"]),
            int(payload["project_id"]),
            None if payload.get("flow_id") is None else UUID(payload["flow_id"]),
            RunStatus(payload["status"]),
            None if since is None else datetime.fromisoformat(since),
            datetime.fromisoformat(payload["until"]),
            bool(payload.get("latest")),
        )


async def flow_named(conn: AsyncConnection[Any], project_id: int, name: str) -> UUID | None:
    cur = await conn.execute(_SQL["flow_named"], {"project_id": project_id, "name": name})
    row = await cur.fetchone()
    return None if row is None else UUID(str(row[0]))


async def count_matching(conn: AsyncConnection[Any], bulk: BulkRetry) -> int:
    """How many runs the filter matches now (at most MAX_COUNTED)."""
    cur = await conn.execute(_SQL["count_matching"], {**bulk.params(), "limit": MAX_COUNTED})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def retry_next_batch(
    conn: AsyncConnection[Any], bulk: BulkRetry, budget: RunBudget, *, limit: int = BATCH_SIZE
) -> int:
    """Queue the next `limit` runs of the bulk retry again (marked with its batch); how many
    were taken (0: it is done). Call inside a transaction; wake the queue after the commit."""
    cur = await conn.execute(_SQL["next_batch"], {**bulk.params(), "limit": limit})
    due = [UUID(str(row[0])) for row in await cur.fetchall()]
    if not due:
        return 0
    await requeue(conn, bulk.project_id, due, budget, latest=bulk.latest, batch=bulk.batch)
    return len(due)
