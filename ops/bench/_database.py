"""The server a benchmark runs on, and the fresh databases it creates there and drops after.

A benchmark never touches an existing database: it creates ``<prefix>_<random>`` on the
server, works only there and drops it at the end, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import urlsplit, urlunsplit

from psycopg import AsyncConnection, sql

from app import embedded

SETTINGS = ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "work_mem")


@contextlib.contextmanager
def server(database_url: str | None) -> Iterator[str]:
    """The URL of a database on the server to use; without one, a temporary embedded server
    is started and stopped again on exit."""
    if database_url is not None:
        yield database_url
        return
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver's platformdirs probe (no XDG_RUNTIME_DIR)
            url = embedded.start(Path(tmp))
            from pgserver.postgres_server import get_server
        try:
            yield url
        finally:
            get_server(Path(tmp) / "pgdata").cleanup()


def database_url(server_url: str, name: str) -> str:
    """`server_url` pointed at database `name` (host, socket and credentials kept)."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL, got {parts.scheme or server_url!r}")
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def connect(url: str) -> AsyncConnection[Any]:
    return await AsyncConnection.connect(url, autocommit=True)


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """Create an empty database for this run; yield its URL; drop it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    async with await connect(server_url) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(server_url, name)
    finally:
        async with await connect(server_url) as conn:
            await conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def reset(conn: AsyncConnection[Any], tables: list[str]) -> None:
    """Empty `tables` and refresh their statistics, so each phase starts from the same state."""
    names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
    await conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
    await conn.execute(sql.SQL("VACUUM ANALYZE {}").format(names))


async def analyze(conn: AsyncConnection[Any], tables: list[str]) -> None:
    names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
    await conn.execute(sql.SQL("VACUUM ANALYZE {}").format(names))


async def count(conn: AsyncConnection[Any], table: str, where: LiteralString = "true") -> int:
    """Rows of `table` matching the condition `where`."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
        sql.Identifier(table), sql.SQL(where)
    )
    cur = await conn.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def describe(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """The server's version and the settings that shape queue throughput."""
    cur = await conn.execute("SELECT version()")
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", (list(SETTINGS),)
    )
    return {"version": row[0], "settings": dict(await cur.fetchall())}
