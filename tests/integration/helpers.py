"""Shared helpers for tests against real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

T0 = datetime(2030, 1, 1, tzinfo=UTC)
"""A fixed 'now' for time-dependent queries: tests pass time instead of sleeping."""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def connect(url: str) -> AsyncConnection[Any]:
    return await AsyncConnection.connect(url, autocommit=True)


async def fetchval(conn: AsyncConnection[Any], query: str, params: Any = None) -> Any:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Re-check state held by another process (a backend, a lock) until it holds.

    There is no event to wait on for such state, so it is polled, failing after `within`
    seconds; the poll is a bounded re-check of a fact, never a guess at timing.
    """
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 -- the state lives in another process
            await asyncio.sleep(0.005)


async def wait_until_blocked_on_lock(observer: AsyncConnection[Any], pid: int) -> None:
    """Return once backend `pid` waits for a lock (a real observable state, not a guess)."""

    async def blocked() -> bool:
        return bool(
            await fetchval(
                observer,
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                (pid,),
            )
        )

    await eventually(blocked)


async def create_project(
    conn: AsyncConnection[Any], name: str, concurrency_limit: int | None = None
) -> int:
    return int(
        await fetchval(
            conn,
            "INSERT INTO projects (name, concurrency_limit) VALUES (%s, %s) RETURNING id",
            (name, concurrency_limit),
        )
    )
