"""Gauges read from the database at each scrape (all processes' figures); the only module
that runs ``app/sql/gauges.sql``."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from app import queries

_SQL = queries.load("gauges")


async def queue_health(conn: AsyncConnection[Any], *, stale_seconds: float) -> dict[str, float]:
    """`oldest_ready_seconds` (the oldest ready job's age, 0 when none) and `workers` (those
    seen within `stale_seconds` and not stopped)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SQL["queue_health"], {"stale_seconds": stale_seconds})
        row = await cur.fetchone()
    assert row is not None
    return {key: float(value) for key, value in row.items()}
