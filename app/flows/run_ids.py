"""Short run ids: a unique prefix of a run's id (at least `MIN_PREFIX` hex digits, as git
and docker take them) names the run, within a project. The only module that runs
``app/sql/run_ids.sql``.

A prefix covers one contiguous range of UUIDs (the prefix padded with ``0`` to the prefix
padded with ``f``), so finding its runs is a range scan of the primary key, not a scan of
the table; at most `MAX_CANDIDATES` + 1 rows are read, whatever the prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from app import queries

_SQL = queries.load("run_ids")

MIN_PREFIX = 6
MAX_CANDIDATES = 10
_HEX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},32}}")
# The hyphens a prefix may keep, where a UUID's text has them (after 8, 12, 16, 20 digits).
_HYPHENS = (8, 13, 18, 23)


class NotARunId(ValueError):
    """Neither a run id nor a prefix of one (too short, or not hexadecimal)."""


@dataclass(frozen=True)
class Candidate:
    id: UUID
    flow: str
    status: str
    created_at: datetime


class NoRun(LookupError):
    """No run of the project has an id with this prefix."""


class Ambiguous(LookupError):
    """More than one run of the project has an id with this prefix: `candidates` holds the
    newest `MAX_CANDIDATES` of them, `more` says whether others match too."""

    def __init__(self, prefix: str, found: list[Candidate]) -> None:
        self.prefix = prefix
        self.candidates = found[:MAX_CANDIDATES]
        self.more = len(found) > MAX_CANDIDATES
        count = f"more than {MAX_CANDIDATES}" if self.more else str(len(found))
        super().__init__(f"run id {prefix!r} is ambiguous: {count} runs match; give more of it")


def digits(raw: str) -> str:
    """The hex digits of `raw`, a run id or a prefix of one, lower case (NotARunId if it is
    neither: hyphens only where a UUID has them, 6 to 32 digits)."""
    text = raw.strip().lower()
    if any(char == "-" and index not in _HYPHENS for index, char in enumerate(text)):
        raise NotARunId(raw)
    found = text.replace("-", "")
    if not _HEX.fullmatch(found):
        raise NotARunId(raw)
    return found


async def resolve(conn: AsyncConnection[Any], project_id: int, raw: str) -> UUID:
    """The project's run that `raw` names: its whole id (returned as it is, whether or not
    such a run exists) or a unique prefix. NotARunId, NoRun or Ambiguous otherwise."""
    found = digits(raw)
    if len(found) == 32:
        return UUID(found)
    cur = await conn.execute(
        _SQL["runs_in_id_range"],
        {
            "low": UUID(found.ljust(32, "0")),
            "high": UUID(found.ljust(32, "f")),
            "project_id": project_id,
            "limit": MAX_CANDIDATES + 1,
        },
    )
    rows = [Candidate(UUID(str(row[0])), *row[1:]) for row in await cur.fetchall()]
    if not rows:
        raise NoRun(raw)
    if len(rows) > 1:
        raise Ambiguous(raw, rows)
    return rows[0].id
