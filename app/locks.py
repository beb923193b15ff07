"""Advisory-lock helpers: named locks and leadership.

Named locks give mutual exclusion across processes and hosts sharing one database: a
session-level advisory lock keyed by a hash of the name, held for the body of an
``async with`` and released when the body ends, normally or by an exception. A lock lives
no longer than its connection, so a crashed holder never leaves a lock behind.

Leadership makes one process of many the holder of a role (for example the maintenance
pass). The leader keeps a dedicated connection holding the role's lock; when that process
or connection dies, Postgres drops the lock and the next follower to try takes over.

(The per-project concurrency gate is also an advisory lock; it lives in the claim function,
see migration 0001.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app import queries
from app.db import Outage

log = logging.getLogger(__name__)

_SQL = queries.load("locks")

LockSource = AsyncConnection[Any] | AsyncConnectionPool[Any]


class LockTimeout(Exception):
    """The named lock stayed held by someone else for the whole timeout."""


@contextlib.asynccontextmanager
async def _session(source: LockSource) -> AsyncIterator[AsyncConnection[Any]]:
    if isinstance(source, AsyncConnectionPool):
        async with source.connection() as conn:
            yield conn
    else:
        yield source


@contextlib.asynccontextmanager
async def lock(
    source: LockSource,
    name: str,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 -- enforced by Postgres' lock_timeout
) -> AsyncIterator[None]:
    """Hold the lock `name` for the body; wait at most `timeout` seconds (None: forever).

    With a pool, a connection is held for the duration. With a connection, it may be in
    autocommit mode or inside a transaction (a timed-out wait then rolls back only a
    savepoint of it).
    """
    async with _session(source) as conn:
        await _acquire(conn, name, timeout)
        try:
            yield
        finally:
            await _release(conn, name)


@contextlib.asynccontextmanager
async def try_lock(source: LockSource, name: str) -> AsyncIterator[bool]:
    """Take the lock `name` only if it is free; the body learns whether it got it."""
    async with _session(source) as conn:
        cur = await conn.execute(_SQL["try_acquire_lock"], {"name": name})
        row = await cur.fetchone()
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            if acquired:
                await _release(conn, name)


async def _acquire(conn: AsyncConnection[Any], name: str, timeout: float | None) -> None:  # noqa: ASYNC109
    if timeout is None:
        await conn.execute(_SQL["acquire_lock"], {"name": name})
        return
    # lock_timeout 0 means "wait forever" to Postgres, so a zero timeout becomes 1 ms.
    milliseconds = max(1, round(timeout * 1000))
    try:
        async with conn.transaction():
            cur = await conn.execute(_SQL["current_lock_timeout"])
            row = await cur.fetchone()
            previous = row[0] if row else "0"
            await conn.execute(_SQL["set_lock_timeout"], {"timeout": f"{milliseconds}ms"})
            await conn.execute(_SQL["acquire_lock"], {"name": name})
            await conn.execute(_SQL["set_lock_timeout"], {"timeout": previous})
    except psycopg.errors.LockNotAvailable:
        raise LockTimeout(f"lock {name!r} still held after {timeout}s") from None


async def _release(conn: AsyncConnection[Any], name: str) -> None:
    try:
        cur = await conn.execute(_SQL["release_lock"], {"name": name})
        row = await cur.fetchone()
    except psycopg.OperationalError:
        return  # the session is gone, and its locks with it
    if not (row and row[0]):
        log.error("lock %r was not held at release", name)


class Leadership:
    """Leadership of one role among all processes on the database.

    `ensure()` is called every tick: a follower tries to become leader; a leader confirms it
    still holds the lock on its dedicated connection. Work done as leader should run on
    `connection`, so a pass cannot outlive the session that proves the role.
    """

    def __init__(self, conninfo: str, role: str) -> None:
        self._conninfo = conninfo
        self._role = role
        self._conn: AsyncConnection[Any] | None = None
        self._leading = False
        self._outage = Outage(f"leadership of {role!r}", log)

    @property
    def is_leader(self) -> bool:
        return self._leading and self._conn is not None and not self._conn.broken

    @property
    def connection(self) -> AsyncConnection[Any]:
        if not self.is_leader or self._conn is None:
            raise RuntimeError(f"not the leader of {self._role!r}")
        return self._conn

    async def ensure(self) -> bool:
        """Become or stay leader if possible; True while this process leads the role."""
        try:
            if self._conn is None or self._conn.broken or self._conn.closed:
                self._leading = False
                self._conn = await AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name=f"sluice-leader:{self._role}"
                )
            query = "holds_leadership" if self._leading else "try_acquire_leadership"
            cur = await self._conn.execute(_SQL[query], {"role": self._role})
            row = await cur.fetchone()
            leading = bool(row and row[0])
        except psycopg.OperationalError as exc:
            self._outage.failed(exc)
            await self.release()
            return False
        self._outage.ok()
        if leading != self._leading:
            log.info("%s leader of %r", "became" if leading else "no longer", self._role)
        self._leading = leading
        return leading

    async def release(self) -> None:
        """Step down: closing the session drops the lock."""
        conn, self._conn, self._leading = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
