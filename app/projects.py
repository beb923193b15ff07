"""Projects and their API keys.

Invariant: a key's secret is never stored or logged. A key looks like
``sk_<prefix>_<secret>``; the database keeps the prefix (to find the row) and the SHA-256 of
the whole key, and checks it with a constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import class_row

from app import queries

_SQL = queries.load("projects")

_KEY = re.compile(r"^sk_(?P<prefix>[a-z0-9]{10})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    concurrency_limit: int | None
    allow_network: bool
    """Whether its code steps may ask for network (an administrator's choice)."""
    on_failure_flow: str | None
    """The flow a failed run of a flow without its own `on_failure` starts (None: none)."""
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: int
    project_id: int
    prefix: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    """When it last authenticated a request (to the minute: it is noted at most once a minute)."""
    revoked_at: datetime | None


class ProjectNameTaken(Exception):
    """Another project has this name."""


def new_key() -> tuple[str, str]:
    """A fresh key and its visible prefix."""
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))
    return f"sk_{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_project(
    conn: AsyncConnection[Any], name: str, concurrency_limit: int | None = None
) -> Project:
    try:
        async with conn.transaction(), conn.cursor(row_factory=class_row(Project)) as cur:
            await cur.execute(
                _SQL["create_project"], {"name": name, "concurrency_limit": concurrency_limit}
            )
            project = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise ProjectNameTaken(f"a project named {name!r} exists") from None
    assert project is not None
    return project


async def get_project(conn: AsyncConnection[Any], project_id: int) -> Project | None:
    async with conn.cursor(row_factory=class_row(Project)) as cur:
        await cur.execute(_SQL["get_project"], {"id": project_id})
        return await cur.fetchone()


_MAX_ID = 2**63 - 1


async def find_project(conn: AsyncConnection[Any], ref: str) -> Project | None:
    """The project `ref` names: its id when `ref` is digits, else its name (so a project
    whose name is only digits is named by its id)."""
    if ref.isascii() and ref.isdigit():
        return await get_project(conn, int(ref)) if int(ref) <= _MAX_ID else None
    async with conn.cursor(row_factory=class_row(Project)) as cur:
        await cur.execute(_SQL["get_project_by_name"], {"name": ref})
        return await cur.fetchone()


async def list_projects(conn: AsyncConnection[Any], *, after: int, limit: int) -> list[Project]:
    """Up to `limit` projects with ids above `after`, by id."""
    async with conn.cursor(row_factory=class_row(Project)) as cur:
        await cur.execute(_SQL["list_projects"], {"after": after, "limit": limit})
        return await cur.fetchall()


async def list_api_keys(conn: AsyncConnection[Any], project_id: int, limit: int) -> list[ApiKey]:
    """The project's newest `limit` keys, revoked ones included."""
    async with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        await cur.execute(_SQL["list_api_keys"], {"project_id": project_id, "limit": limit})
        return await cur.fetchall()


async def revoke_api_key(conn: AsyncConnection[Any], prefix: str) -> ApiKey | None:
    """Revoke the key with this prefix (None: no such key). From its commit on, `authenticate`
    and `key_still_live` refuse the key: both read the key's row on every call."""
    async with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        await cur.execute(_SQL["revoke_api_key"], {"prefix": prefix})
        return await cur.fetchone()


_UNCHANGED: Any = object()


async def update_project(
    conn: AsyncConnection[Any],
    project_id: int,
    *,
    concurrency_limit: int | None = _UNCHANGED,
    allow_network: bool | None = None,
    on_failure_flow: str | None = _UNCHANGED,
) -> Project | None:
    """Change what is given (a concurrency limit of None: unlimited; a failure handler of
    None: none); None if no such project."""
    given = concurrency_limit is not _UNCHANGED
    handler = on_failure_flow is not _UNCHANGED
    params = {
        "id": project_id,
        "set_limit": given,
        "concurrency_limit": concurrency_limit if given else None,
        "allow_network": allow_network,
        "set_handler": handler,
        "on_failure_flow": on_failure_flow if handler else None,
    }
    async with conn.cursor(row_factory=class_row(Project)) as cur:
        await cur.execute(_SQL["update_project"], params)
        return await cur.fetchone()


async def count_projects(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute(_SQL["count_projects"])
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def create_api_key(
    conn: AsyncConnection[Any], project_id: int, name: str | None = None
) -> tuple[ApiKey, str]:
    """A new key for the project: its record, and the key itself (shown once)."""
    key, prefix = new_key()
    async with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        await cur.execute(
            _SQL["create_api_key"],
            {"project_id": project_id, "prefix": prefix, "key_hash": key_hash(key), "name": name},
        )
        record = await cur.fetchone()
    assert record is not None
    return record, key


def key_prefix(key: str) -> str | None:
    """The visible prefix of a well-formed key (what a decision made with it is `by`)."""
    match = _KEY.match(key)
    return None if match is None else match["prefix"]


async def authenticate(conn: AsyncConnection[Any], key: str) -> int | None:
    """The project a key belongs to, or None for a malformed, unknown or revoked key."""
    match = _KEY.match(key)
    if match is None:
        return None
    cur = await conn.execute(_SQL["find_api_key"], {"prefix": match["prefix"]})
    row = await cur.fetchone()
    if row is None:
        # Spend the same time on a miss, so timing does not tell which prefixes exist.
        hmac.compare_digest(key_hash(key), key_hash(""))
        return None
    key_id, project_id, stored = row
    if not hmac.compare_digest(bytes(stored), key_hash(key)):
        return None
    await conn.execute(_SQL["touch_api_key"], {"id": key_id})
    return int(project_id)


def fingerprint(key: str) -> str:
    """A short digest of a key that a console session holds to re-check it on each request
    (never the key itself)."""
    return key_hash(key)[:16].hex()


async def key_still_live(conn: AsyncConnection[Any], key_prefix: str, print_: str) -> int | None:
    """The project of the live key with this prefix and `fingerprint`, or None (revoked,
    deleted, or another key)."""
    cur = await conn.execute(_SQL["find_api_key"], {"prefix": key_prefix})
    row = await cur.fetchone()
    if row is None:
        return None
    _key_id, project_id, stored = row
    if not hmac.compare_digest(bytes(stored)[:16].hex(), print_):
        return None
    return int(project_id)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (for the admin key)."""
    return hmac.compare_digest(key_hash(given), key_hash(expected))
