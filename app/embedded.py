"""The embedded PostgreSQL server (the ``pgserver`` wheel) used when no URL is configured.

The server keeps its data under ``<data_dir>/pgdata`` across restarts, listens on a Unix
socket only, and is stopped when the last process using it exits.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "sluice"


class EmbeddedDatabaseError(Exception):
    """The embedded server could not be started."""


def start(data_dir: Path, database: str = DATABASE) -> str:
    """Start (or join) the embedded server and return the URL of `database` on it."""
    try:
        # Deferred: only needed when no external database is configured.
        from pgserver.postgres_server import get_server
    except ImportError:
        raise EmbeddedDatabaseError(
            "the embedded PostgreSQL (the pgserver package) is not available on this platform "
            f"({platform.system().lower()} {platform.machine()}); set SLUICE_DATABASE_URL to a "
            "PostgreSQL server"
        ) from None

    pgdata = data_dir.expanduser().resolve() / "pgdata"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise EmbeddedDatabaseError(
            f"could not start embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    ensure_database(server.get_uri("postgres"), database)
    url: str = server.get_uri(database)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return url


def ensure_database(maintenance_url: str, database: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            # Two processes starting together may both get here; one CREATE wins.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
