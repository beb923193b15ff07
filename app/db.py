"""Database access: the URL in force (configured or embedded) and the connection pool.

Pool connections are in autocommit mode: a single statement is its own transaction, and
work that needs several statements to commit together opens ``conn.transaction()``.
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


def create_pool(settings: Settings, *, name: str = "sluice") -> AsyncConnectionPool[Any]:
    """A pool over the resolved URL; open it with ``async with`` or ``await pool.open()``."""
    return AsyncConnectionPool(
        database_url(settings),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs={"autocommit": True, "application_name": name},
        open=False,
        name=name,
    )
