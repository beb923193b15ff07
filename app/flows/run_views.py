"""Read-only views of runs for the API and metrics; the only module that runs
``app/sql/run_views.sql``. Every run query is scoped to a project."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from app import queries

_SQL = queries.load("run_views")

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


def summary(row: dict[str, Any]) -> dict[str, Any]:
    started, finished = row["started_at"], row["finished_at"]
    return {
        "id": str(row["id"]),
        "flow": row["flow"],
        "flow_id": str(row["flow_id"]),
        "version": row["version"],
        "status": row["status"],
        "parent_run_id": str(row["parent_run_id"]) if row["parent_run_id"] else None,
        "created_at": row["created_at"].isoformat(),
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
        "duration_seconds": (finished - started).total_seconds() if started and finished else None,
        "error": row["error"],
    }


async def list_runs(
    conn: AsyncConnection[Any],
    project_id: int,
    *,
    flow: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of run summaries, newest first, and the cursor of the next page (or None)."""
    after = decode_cursor(cursor) if cursor else (None, None)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _SQL["list_runs"],
            {
                "project_id": project_id,
                "flow": flow,
                "status": status,
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
    return [summary(row) for row in rows], following


async def get_run(
    conn: AsyncConnection[Any], project_id: int, run_id: UUID
) -> dict[str, Any] | None:
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
    return {
        **summary(row),
        "trigger": row["trigger"],
        "output": row["output"],
        "response": row["response"],
        "steps": [_step(step) for step in steps],
        "children": [summary(child) for child in children],
    }


def _step(row: dict[str, Any]) -> dict[str, Any]:
    started, finished = row["started_at"], row["finished_at"]
    return {
        "key": row["key"],
        "step_id": row["step_id"],
        "type": row["type"],
        "status": row["status"],
        "attempts": row["attempts"],
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
        "duration_seconds": (finished - started).total_seconds() if started and finished else None,
        "output": row["output"],
        "error": row["error"],
        "stdout": row["stdout"],
        "stderr": row["stderr"],
    }


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


_SUMMARY_KEYS = (
    "id",
    "flow",
    "flow_id",
    "version",
    "status",
    "parent_run_id",
    "created_at",
    "started_at",
    "finished_at",
    "duration_seconds",
    "error",
)


def summary_only(run: dict[str, Any]) -> dict[str, Any]:
    """The summary fields of a run's full view."""
    return {key: run[key] for key in _SUMMARY_KEYS}
