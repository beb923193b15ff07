"""Schema version checks: is the database at the migrations' head?"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection

from app import queries
from migrations import runner

_SQL = queries.load("schema")


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


@functools.cache
def head_revision() -> str:
    return runner.head()


async def status(conn: AsyncConnection[Any]) -> SchemaStatus:
    try:
        async with conn.transaction():
            cur = await conn.execute(_SQL["current_revision"])
            row = await cur.fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    return SchemaStatus(current=row[0] if row else None, head=head_revision())


def upgrade(url: str) -> None:
    """Bring the database to head (blocking; run before serving)."""
    runner.upgrade(url)
