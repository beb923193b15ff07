"""Database access: the URLs in force (configured or embedded) and the connection pool.

Pool connections are in autocommit mode: a single statement is its own transaction, and
work that needs several statements to commit together opens ``conn.transaction()``. Pool
statements never rely on session state (only transaction-level advisory locks), so the pool
may go through a transaction-pooling PgBouncer; what needs a session — the LISTEN
connection, session advisory locks (leadership, migrations, named locks), migrations —
uses `direct_url`.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from app import embedded
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
    return settings.model_copy(update={"database_url": SecretStr(resolve_database_url(settings))})


def database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("database URL not resolved; call with_database_url() at start")
    return settings.database_url.get_secret_value()


def direct_url(settings: Settings) -> str:
    """The URL for connections that need a session of their own (not a pooled one)."""
    if settings.direct_database_url is not None:
        return settings.direct_database_url.get_secret_value()
    return database_url(settings)


def create_pool(settings: Settings, *, name: str = "sluice") -> AsyncConnectionPool[Any]:
    """A pool over the resolved URL; open it with ``async with`` or ``await pool.open()``."""
    kwargs: dict[str, Any] = {"autocommit": True, "application_name": name}
    if not settings.database_prepared_statements:
        kwargs["prepare_threshold"] = None
    return AsyncConnectionPool(
        database_url(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs=kwargs,
        open=False,
        name=name,
    )
