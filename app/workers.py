"""The worker registry: who is running, where, with how many slots, last seen when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from app import queries

_SQL = queries.load("workers")


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    container_type: str
    slots: int
    version: str
    started_at: datetime | None = None
    last_seen: datetime | None = None
    stopped_at: datetime | None = None


async def register(conn: AsyncConnection[Any], worker: WorkerInfo) -> None:
    await conn.execute(
        _SQL["register_worker"],
        {
            "id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "container_type": worker.container_type,
            "slots": worker.slots,
            "version": worker.version,
        },
    )


async def touch(conn: AsyncConnection[Any], worker_id: str, *, now: datetime | None = None) -> None:
    await conn.execute(_SQL["touch_worker"], {"id": worker_id, "now": now})


async def stopped(conn: AsyncConnection[Any], worker_id: str) -> None:
    await conn.execute(_SQL["stop_worker"], {"id": worker_id})


async def recent(
    conn: AsyncConnection[Any], *, since: datetime | None = None, limit: int = 100
) -> list[WorkerInfo]:
    async with conn.cursor(row_factory=class_row(WorkerInfo)) as cur:
        await cur.execute(_SQL["list_workers"], {"since": since, "limit": limit})
        return await cur.fetchall()
