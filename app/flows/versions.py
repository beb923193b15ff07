"""A flow's versions as a person reaches them: the list, one version, and a rollback. The
only module that runs ``app/sql/versions.sql``.

Invariant: a rollback changes only which version new runs start with (``flows.live_version``,
read through ``sluice_live_flows``); no version is added, changed or removed, and runs keep
the versions they pinned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from app import queries

_SQL = queries.load("versions")
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Version:
    version: int
    created_at: datetime
    created_by: str | None
    """The prefix of the API key that deployed it (None before this was recorded)."""
    content_hash: str
    live: bool
    """Whether new runs start with it."""


@dataclass(frozen=True)
class VersionDetail(Version):
    definition: dict[str, Any]


async def list_versions(
    conn: AsyncConnection[Any], project_id: int, name: str, *, before: int, limit: int
) -> list[Version]:
    """Up to `limit` versions of the flow numbered below `before`, newest first."""
    async with conn.cursor(row_factory=class_row(Version)) as cur:
        await cur.execute(
            _SQL["list_versions"],
            {"project_id": project_id, "name": name, "before": before, "limit": limit},
        )
        return await cur.fetchall()


async def get_version(
    conn: AsyncConnection[Any], project_id: int, name: str, version: int
) -> VersionDetail | None:
    async with conn.cursor(row_factory=class_row(VersionDetail)) as cur:
        await cur.execute(
            _SQL["get_version"], {"project_id": project_id, "name": name, "version": version}
        )
        return await cur.fetchone()


async def roll_back(conn: AsyncConnection[Any], project_id: int, name: str, version: int) -> bool:
    """Make `version` the one the flow's new runs start with (False: no such flow or version)."""
    cur = await conn.execute(
        _SQL["roll_back"], {"project_id": project_id, "name": name, "version": version}
    )
    return await cur.fetchone() is not None
