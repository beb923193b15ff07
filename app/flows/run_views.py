"""Read-only views of runs for the API and metrics; the only module that runs
``app/sql/run_views.sql``. Every run query is scoped to a project, and answers with the
reply models defined here (the API's run shapes)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import Field, model_validator

from app import queries
from app.flows.model import RunStatus, StepStatus
from app.views import Timestamp, View

_SQL = queries.load("run_views")

DEFAULT_PAGE = 50
MAX_PAGE = 200


class BadCursor(ValueError):
    """A `cursor` that this API did not hand out."""


def encode_cursor(created_at: datetime, run_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(run_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
        return datetime.fromisoformat(created_at), UUID(run_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadCursor(f"invalid cursor {cursor!r}") from None


class _Timed(View):
    """A record with `started_at` and `finished_at`: `duration_seconds` is the time between."""

    @model_validator(mode="before")
    @classmethod
    def _duration(cls, row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        started, finished = row.get("started_at"), row.get("finished_at")
        seconds = (finished - started).total_seconds() if started and finished else None
        return {**row, "duration_seconds": seconds}


class RunSummary(_Timed):
    """A run: its flow and version, status, timings and error."""

    id: UUID
    flow: str
    flow_id: UUID
    version: int
    status: RunStatus
    parent_run_id: UUID | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_seconds: float | None
    error: str | None
    replay_of: UUID | None = None
    """The run this one replays (`POST /api/v1/runs/{id}/replay`)."""
    active_seconds: float | None = None
    """The sum of its attempts' spans (`RunAttempt`), not created → finished: a run
    retried a day after it failed reports the time it ran."""


class RunAttempt(_Timed):
    """One attempt of a run: from the execution that first turns it RUNNING (after its
    creation or a retry) to its end; a pause inside it belongs to it. Kept in `run_attempts`
    by a trigger on the run's status (migration 0013), so every way a run ends closes it."""

    attempt: int
    started_at: Timestamp
    finished_at: Timestamp | None
    duration_seconds: float | None


class StepRun(_Timed):
    """One step instance of a run; `key` is unique within the run (``each[2].notify``)."""

    key: str
    step_id: str
    type: str
    status: StepStatus
    attempts: int
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_seconds: float | None
    output: Any
    error: str | None
    stdout: str | None
    stderr: str | None


class RunTrigger(View):
    """What started the run: the webhook's body, headers and query (a child run's `body`
    is its input); a form's `body` is its fields and `raw_body` the form as sent."""

    body: Any
    headers: dict[str, str]
    query: dict[str, str]
    raw_body: str | None = None


class RunResponse(View):
    """The reply a `respond` step set."""

    status: int
    headers: dict[str, str]
    body: Any


class Run(RunSummary):
    """A run with its trigger, output, reply, steps and child runs."""

    trigger: RunTrigger
    output: Any
    response: RunResponse | None
    steps: list[StepRun]
    children: list[RunSummary]
    attempts: list[RunAttempt] = Field(default_factory=list)


async def list_runs(
    conn: AsyncConnection[Any],
    project_id: int,
    *,
    flow: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[RunSummary], str | None]:
    """A page of run summaries, newest first, and the cursor of the next page (or None);
    `since` and `until` bound the creation time (until exclusive)."""
    after = decode_cursor(cursor) if cursor else (None, None)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _SQL["list_runs"],
            {
                "project_id": project_id,
                "flow": flow,
                "status": status,
                "since": since,
                "until": until,
                "after_created_at": after[0],
                "after_id": after[1],
                "limit": limit + 1,
            },
        )
        rows = await cur.fetchall()
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        following = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
    return [RunSummary.model_validate(row) for row in rows], following


async def get_run(conn: AsyncConnection[Any], project_id: int, run_id: UUID) -> Run | None:
    """A run with its trigger, output, reply, steps and children; None if not the project's."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["get_run"], {"run_id": run_id, "project_id": project_id})
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(_SQL["get_step_runs"], {"run_id": run_id})
        steps = await cur.fetchall()
        await cur.execute(_SQL["get_children"], {"run_id": run_id})
        children = await cur.fetchall()
        await cur.execute(_SQL["get_run_attempts"], {"run_id": run_id})
        attempts = await cur.fetchall()
    return Run.model_validate({**row, "steps": steps, "children": children, "attempts": attempts})


async def get_summary(
    conn: AsyncConnection[Any], project_id: int, run_id: UUID
) -> RunSummary | None:
    """A run's summary; None if it is not the project's."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["get_run"], {"run_id": run_id, "project_id": project_id})
        row = await cur.fetchone()
    return None if row is None else RunSummary.model_validate(row)


async def run_tree(conn: AsyncConnection[Any], run_id: UUID) -> list[UUID]:
    cur = await conn.execute(_SQL["run_tree"], {"run_id": run_id})
    return [UUID(str(row[0])) for row in await cur.fetchall()]


async def live_runs_by_status(conn: AsyncConnection[Any]) -> dict[str, int]:
    cur = await conn.execute(_SQL["live_runs_by_status"])
    return {str(status): int(count) for status, count in await cur.fetchall()}


async def queue_depth(conn: AsyncConnection[Any]) -> dict[str, int]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["queue_depth"])
        row = await cur.fetchone()
    assert row is not None
    return {key: int(value) for key, value in row.items()}
