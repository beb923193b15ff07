"""Database access: the URLs in force (configured or embedded) and the connection pool.

Pool connections are in autocommit mode: a single statement is its own transaction, and
work that needs several statements to commit together opens ``conn.transaction()``. Pool
statements never rely on session state (only transaction-level advisory locks), so the pool
may go through a transaction-pooling PgBouncer; what needs a session — the LISTEN
connection, session advisory locks (leadership, migrations, named locks), migrations —
uses `direct_url`.

Invariant (faults cost seconds): a pooled connection the server has closed — a restart, a
terminated backend — is never handed out (`_alive` finds it without a round trip), a caller
waits at most SLUICE_DATABASE_TIMEOUT_SECONDS for a connection, and while the server is away
the pool tries again at least every `RECONNECT_MAX_DELAY` seconds, so it serves again within
about that long of the server's return.
"""

from __future__ import annotations

import asyncio
import logging
import math
import select
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import psycopg_pool.pool_async
from psycopg import AsyncConnection
from psycopg.pq import ConnStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff
from pydantic import SecretStr

from app import embedded
from app.secrets import keys
from app.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, or that of the embedded server (started if need be)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded.start(settings.data_dir)


def with_database_url(settings: Settings) -> Settings:
    """Settings whose database URL is resolved, so every component uses the same server."""
    if settings.database_url is not None:
        return settings
    resolved: dict[str, SecretStr] = {"database_url": SecretStr(resolve_database_url(settings))}
    if settings.secrets_key is None:
        # The embedded default keeps its secrets' key next to its data (SLUICE_SECRETS_KEY).
        resolved["secrets_key"] = SecretStr(keys.embedded_key(settings.data_dir))
    return settings.model_copy(update=resolved)


def database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("database URL not resolved; call with_database_url() at start")
    return settings.database_url.get_secret_value()


def direct_url(settings: Settings) -> str:
    """The URL for connections that need a session of their own (not a pooled one)."""
    if settings.direct_database_url is not None:
        return settings.direct_database_url.get_secret_value()
    return database_url(settings)


RECONNECT_MAX_DELAY = 1.0


class _Backoff(AttemptWithBackoff):
    """psycopg_pool's backoff between attempts (reconnects, and connections that failed the
    check), started sooner and capped: doubling without bound, it left the pool idle for
    ~18 s after a 15 s outage. psycopg_pool has no setting for it."""

    INITIAL_DELAY = 0.1

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_MAX_DELAY)


setattr(psycopg_pool.pool_async, "AttemptWithBackoff", _Backoff)  # noqa: B010 -- no public setting


async def _alive(conn: AsyncConnection[Any]) -> None:
    """Refuse a connection the server has closed, without a round trip: an idle pooled
    connection's socket is readable only when the server sent something unasked — in
    practice its goodbye after a restart or a terminated backend (pool connections LISTEN to
    nothing). Such a connection is dropped, whatever it got; the pool opens another."""
    pgconn = conn.pgconn
    if pgconn.status == ConnStatus.OK:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
        if not readable:
            return
    await conn.close()  # so that the pool discards it, instead of taking it back
    raise psycopg.OperationalError("the server closed the connection")


def create_pool(settings: Settings, *, name: str = "sluice") -> AsyncConnectionPool[Any]:
    """A pool over the resolved URL; open it with ``async with`` or ``await pool.open()``."""
    timeout = settings.database_timeout_seconds
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "application_name": name,
        # libpq's connect_timeout is whole seconds, 2 at the least.
        "connect_timeout": max(2, math.ceil(timeout)),
    }
    if not settings.database_prepared_statements:
        kwargs["prepare_threshold"] = None
    return AsyncConnectionPool(
        database_url(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs=kwargs,
        open=False,
        name=name,
        timeout=timeout,
        check=_alive,
    )


class Outage:
    """What one component says about the database going away: one line when it first fails,
    one when it works again — not a line (or a traceback) per attempt in between."""

    def __init__(self, component: str, logger: logging.Logger) -> None:
        self.component = component
        self.logger = logger
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.logger.warning("%s: database unavailable (%s); retrying", self.component, first)

    def ok(self) -> None:
        if self.since is not None:
            seconds = time.monotonic() - self.since
            self.since = None
            self.logger.warning("%s: database back after %.1f s", self.component, seconds)


T = TypeVar("T")


async def again_after_outage(
    work: Callable[[], Awaitable[T]], *, within_seconds: float, outage: Outage
) -> T:
    """`work()`, tried again after a database error (`work` takes a fresh connection each
    time) for up to `within_seconds`; after that the error goes up. For work that may be
    repeated: a write whose commit may have happened before its answer was lost must find,
    when repeated, what it did (fenced, upserted, or checked first)."""
    deadline = time.monotonic() + within_seconds
    delay = 0.05
    while True:
        try:
            result = await work()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if time.monotonic() + delay >= deadline:
                raise
            outage.failed(exc)
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECONNECT_MAX_DELAY)
            continue
        outage.ok()
        return result
