"""The pool after a fault: a connection whose backend is gone is never handed out, and a
caller waits a bounded time for one while the database cannot be reached."""

from __future__ import annotations

import time
from typing import Any

import pytest
from psycopg_pool import PoolTimeout
from pydantic import SecretStr

from app import db
from app.settings import Settings
from tests.integration.helpers import connect, eventually, fetchval


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(url),
        "pool_min_size": 3,
        "pool_max_size": 3,
        **overrides,
    }
    return Settings(**values)


async def test_connections_of_terminated_backends_are_never_handed_out(database_url: str) -> None:
    async with (
        db.create_pool(settings_for(database_url), name="doomed") as pool,
        await connect(database_url) as killer,
    ):
        await pool.wait(timeout=10)
        kill = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'doomed'"
        )
        assert await fetchval(killer, kill) == 3

        async def all_gone() -> bool:
            alive = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'doomed'"
            return bool(await fetchval(killer, alive) == 0)

        await eventually(all_gone)
        started = time.monotonic()
        for _ in range(6):  # more than the pool holds: each request gets a live connection
            async with pool.connection() as conn:
                assert await fetchval(conn, "SELECT 1") == 1
        assert time.monotonic() - started < 3


async def test_a_caller_waits_at_most_the_database_timeout(database_url: str) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/nothing"
    settings = settings_for(unreachable, pool_min_size=1, database_timeout_seconds=0.5)
    async with db.create_pool(settings, name="nowhere") as pool:
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            async with pool.connection():
                pass
        assert time.monotonic() - started < 1.5
