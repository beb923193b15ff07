"""Read-only views the console needs beyond the API's (waiting steps, flow versions and
failure rates, queue health); the only module that runs ``app/sql/console.sql``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row

from app import queries
from app.flows import resume, waits
from app.flows.decisions import DEFAULT_CHOICES
from app.flows.definition import FlowDefinition, parse_flow

_SQL = queries.load("console")


@dataclass(frozen=True)
class ProjectName:
    id: int
    name: str


@dataclass(frozen=True)
class WaitingStep:
    run_id: UUID
    step_key: str
    waiting_since: datetime
    project_id: int
    project: str
    flow: str
    run_created_at: datetime
    resume_secret: bytes
    choices: tuple[str, ...]
    """The buttons the step offers (its definition's `choices`)."""

    def resume_url(self, public_url: str) -> str:
        """The step's resume URL (its approval page), rebuilt from the run's secret."""
        return resume.url(public_url, self.run_id, self.resume_secret, self.step_key)


@dataclass(frozen=True)
class FlowVersion:
    version: int
    content_hash: str
    created_at: datetime


@dataclass(frozen=True)
class DeadJob:
    id: int
    kind: str
    run_id: UUID | None
    project: str | None
    attempt: int
    last_error: str
    died_at: datetime


async def list_projects(conn: AsyncConnection[Any]) -> list[ProjectName]:
    async with conn.cursor(row_factory=class_row(ProjectName)) as cur:
        await cur.execute(_SQL["list_projects"])
        return await cur.fetchall()


async def waiting_steps(
    conn: AsyncConnection[Any],
    project_id: int | None,
    *,
    run_id: UUID | None = None,
    limit: int = 200,
) -> list[WaitingStep]:
    """Pending wait_for_webhook steps, oldest first (`project_id` None: every project's),
    in one statement; each flow version's definition is parsed once."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _SQL["waiting_steps"], {"project_id": project_id, "run_id": run_id, "limit": limit}
        )
        rows = await cur.fetchall()
    definitions: dict[UUID, FlowDefinition] = {}
    found: list[WaitingStep] = []
    for row in rows:
        version_id, definition = row.pop("flow_version_id"), row.pop("definition")
        if version_id not in definitions:
            definitions[version_id] = parse_flow(definition)
        step = waits.webhook_step(definitions[version_id], row["step_key"])
        choices = tuple(step.choices) if step is not None else DEFAULT_CHOICES
        found.append(WaitingStep(**row, choices=choices))
    return found


async def flow_stats(
    conn: AsyncConnection[Any], project_id: int, since: datetime
) -> dict[str, tuple[int, int]]:
    """Per flow name: (runs created since `since`, how many of them ended unsuccessfully)."""
    cur = await conn.execute(_SQL["flow_stats"], {"project_id": project_id, "since": since})
    return {str(name): (int(runs), int(failed)) for name, runs, failed in await cur.fetchall()}


async def flow_versions(conn: AsyncConnection[Any], flow_id: UUID) -> list[FlowVersion]:
    async with conn.cursor(row_factory=class_row(FlowVersion)) as cur:
        await cur.execute(_SQL["flow_versions"], {"flow_id": flow_id})
        return await cur.fetchall()


async def flow_version(conn: AsyncConnection[Any], flow_id: UUID, version: int) -> Any:
    """A version's definition, or None."""
    cur = await conn.execute(_SQL["flow_version"], {"flow_id": flow_id, "version": version})
    row = await cur.fetchone()
    return None if row is None else row[0]


async def child_links(conn: AsyncConnection[Any], run_id: UUID) -> dict[str, UUID]:
    """Step key → the child run that step started."""
    cur = await conn.execute(_SQL["child_links"], {"run_id": run_id})
    return {str(key): UUID(str(child)) for key, child in await cur.fetchall()}


async def queue_health(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """`oldest_ready_seconds` (None: no job waits) and `dead` (how many dead jobs)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["queue_health"])
        row = await cur.fetchone()
    assert row is not None
    oldest = row["oldest_ready_seconds"]
    return {"oldest_ready_seconds": None if oldest is None else float(oldest), "dead": row["dead"]}


async def latest_dead_jobs(conn: AsyncConnection[Any], limit: int = 10) -> list[DeadJob]:
    async with conn.cursor(row_factory=class_row(DeadJob)) as cur:
        await cur.execute(_SQL["latest_dead_jobs"], {"limit": limit})
        return await cur.fetchall()
