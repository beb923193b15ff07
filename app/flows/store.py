"""Deployed flows: names per project, immutable numbered versions.

Invariant: versions of a flow are numbered 1, 2, … without gaps or duplicates, also when
deploys race: the flow row is locked while the next number is taken. Deploying a definition
identical to the live version (the newest, unless a rollback chose another) adds nothing;
any other deploy adds a version and makes it live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from app import queries
from app.flows.definition import FlowDefinition, content_hash

_SQL = queries.load("flows")


@dataclass(frozen=True)
class Deployed:
    flow_id: UUID
    version: int
    created: bool
    """False when the definition was identical to the latest version."""


@dataclass(frozen=True)
class FlowSummary:
    id: UUID
    name: str
    enabled: bool
    created_at: datetime
    version: int


@dataclass(frozen=True)
class FlowDetail:
    id: UUID
    name: str
    enabled: bool
    created_at: datetime
    version: int
    definition: dict[str, Any]
    version_created_at: datetime


async def live_names(conn: AsyncConnection[Any], project_id: int, names: Iterable[str]) -> set[str]:
    """Which of `names` are live flows of the project."""
    cur = await conn.execute(
        _SQL["live_flow_names"], {"project_id": project_id, "names": sorted(set(names))}
    )
    return {str(row[0]) for row in await cur.fetchall()}


async def deploy(
    conn: AsyncConnection[Any],
    project_id: int,
    definition: FlowDefinition,
    created_by: str | None = None,
) -> Deployed:
    """Add a version (made live) unless the definition equals the live version's;
    `created_by`: the deploying key's prefix."""
    digest = content_hash(definition)
    document = definition.model_dump(mode="json", by_alias=True)
    params = {"project_id": project_id, "name": definition.name}
    async with conn.transaction():
        flow_id = await _locked_flow(conn, params)
        cur = await conn.execute(_SQL["latest_version"], {"flow_id": flow_id})
        newest, live, live_hash = await cur.fetchone() or (None, None, None)
        if live is not None and live_hash == digest:
            return Deployed(flow_id, int(live), created=False)
        version = 1 if newest is None else int(newest) + 1
        await conn.execute(
            _SQL["add_version"],
            {
                "flow_id": flow_id,
                "version": version,
                "definition": Jsonb(document),
                "content_hash": digest,
                "created_by": created_by,
            },
        )
    return Deployed(flow_id, version, created=True)


async def _locked_flow(conn: AsyncConnection[Any], params: dict[str, Any]) -> UUID:
    for _ in range(3):
        cur = await conn.execute(_SQL["lock_flow"], params)
        row = await cur.fetchone()
        if row is not None:
            return UUID(str(row[0]))
        cur = await conn.execute(_SQL["create_flow"], params)
        row = await cur.fetchone()
        if row is not None:
            return UUID(str(row[0]))
        # Another deploy created it just now: lock that one.
    raise RuntimeError(f"could not create or lock flow {params['name']!r}")


async def get(conn: AsyncConnection[Any], project_id: int, name: str) -> FlowDetail | None:
    cur = await conn.execute(_SQL["get_flow"], {"project_id": project_id, "name": name})
    row = await cur.fetchone()
    return None if row is None else FlowDetail(*row)


async def list_flows(conn: AsyncConnection[Any], project_id: int) -> list[FlowSummary]:
    cur = await conn.execute(_SQL["list_flows"], {"project_id": project_id})
    return [FlowSummary(*row) for row in await cur.fetchall()]


async def set_enabled(
    conn: AsyncConnection[Any], project_id: int, name: str, enabled: bool
) -> bool:
    cur = await conn.execute(
        _SQL["set_enabled"], {"project_id": project_id, "name": name, "enabled": enabled}
    )
    return await cur.fetchone() is not None


async def delete(conn: AsyncConnection[Any], project_id: int, name: str) -> bool:
    cur = await conn.execute(_SQL["delete_flow"], {"project_id": project_id, "name": name})
    return await cur.fetchone() is not None
