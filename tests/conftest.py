"""Test database: one server per session, a migrated template, a fresh clone per test.

The server is the one named by ``SLUICE_TEST_DATABASE_URL`` (any PostgreSQL you point at,
its user allowed to create databases), or else an embedded ``pgserver`` instance that this
session starts in a temporary directory and removes at the end. pytest-postgresql's
``noproc`` factory builds the template (migrated to head with alembic) and clones it for
each test that asks for ``database_url``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool
from pytest_postgresql import factories

from migrations import runner

TEST_DATABASE_ENV = "SLUICE_TEST_DATABASE_URL"


def _server_params(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    params = conninfo_to_dict(url)
    return {
        "host": params.get("host") or parts.hostname or "localhost",
        "port": params.get("port") or parts.port or 5432,
        "user": params.get("user") or unquote(parts.username or "postgres"),
        "password": params.get("password") or unquote(parts.password or "") or None,
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (a CI time limit, `timeout`) ends the session like Ctrl-C, so that
    # pytest_unconfigure still stops the embedded server instead of leaving it running.
    signal.signal(signal.SIGTERM, _interrupt)
    url = os.environ.get(TEST_DATABASE_ENV)
    if not url:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

            root = Path(tempfile.mkdtemp(prefix="sluice-test-pg-"))
            server = get_server(root / "pgdata", cleanup_mode="delete")
        url = server.get_uri("postgres")
        config.stash[_embedded_key] = (server, root)
    params = _server_params(url)
    config.option.postgresql_host = params["host"]
    config.option.postgresql_port = params["port"]
    config.option.postgresql_user = params["user"]
    config.option.postgresql_password = params["password"]
    config.stash[_server_url_key] = make_conninfo(
        host=params["host"],
        port=str(params["port"]),
        user=params["user"],
        password=params["password"] or "",
        dbname="postgres",
    )


_embedded_key = pytest.StashKey[Any]()
_server_url_key = pytest.StashKey[str]()


def pytest_unconfigure(config: pytest.Config) -> None:
    embedded = config.stash.get(_embedded_key, None)
    if embedded is not None:
        server, root = embedded
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def migrate_template(
    host: str, port: int, user: str, dbname: str, password: str | None, **_: object
) -> None:
    runner.upgrade(
        make_conninfo_url(host=host, port=port, user=user, dbname=dbname, password=password)
    )


def make_conninfo_url(
    *, host: str, port: int | str, user: str, dbname: str, password: str | None
) -> str:
    """A postgresql:// URL (alembic wants a URL) that also works for Unix-socket hosts."""
    from urllib.parse import quote

    auth = quote(user) + (":" + quote(password) if password else "")
    return f"postgresql://{auth}@/{quote(dbname)}?host={quote(host)}&port={port}"


postgresql_noproc = factories.postgresql_noproc(dbname="sluice_test", load=[migrate_template])
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture(scope="session")
def server_url(pytestconfig: pytest.Config) -> str:
    """Conninfo of the test server's maintenance database (for creating scratch databases)."""
    return pytestconfig.stash[_server_url_key]


@pytest.fixture
def database_url(postgresql: psycopg.Connection[Any]) -> str:
    """URL of a fresh database migrated to head, dropped after the test."""
    info = postgresql.info
    return make_conninfo_url(
        host=info.host, port=info.port, user=info.user, dbname=info.dbname, password=info.password
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(
        database_url, min_size=2, max_size=20, kwargs={"autocommit": True}, open=False
    ) as pool:
        yield pool


@pytest.fixture
def scratch_database_url(server_url: str) -> Iterator[str]:
    """URL of an empty database (no schema), dropped after the test."""
    name = f"sluice_migrations_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server_url)
    yield make_conninfo_url(
        host=str(params["host"]),
        port=str(params.get("port") or 5432),
        user=str(params["user"]),
        dbname=name,
        password=str(params.get("password") or "") or None,
    )
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
