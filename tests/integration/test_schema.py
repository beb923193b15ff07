"""The schema a reader sees (``migrations/schema.sql``) is the one the migrations make."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from migrations import catalog, runner

SNAPSHOT = Path(runner.__file__).resolve().parent / "schema.sql"


@pytest.fixture
def snapshot_database(server_url: str) -> Iterator[str]:
    """A database holding nothing but what ``schema.sql`` creates."""
    name = f"sluice_snapshot_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SNAPSHOT.read_text(encoding="utf-8").encode())
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_upgrade_head_makes_exactly_the_schema_snapshot(
    scratch_database_url: str, snapshot_database: str
) -> None:
    runner.upgrade(scratch_database_url)
    with psycopg.connect(scratch_database_url) as migrated:
        expected = catalog.describe(migrated)
    with psycopg.connect(snapshot_database) as snapshot:
        found = catalog.describe(snapshot)
    for kind in expected:
        assert found[kind] == expected[kind], f"{kind} differ: run `./dev schema`"
    # The description sees the objects it should (a broken query would compare empty sets).
    assert "flow_runs.job_max_attempts" in expected["columns"]
    assert "sluice_lease_held(jobs,text,integer)" in expected["functions"]
    assert "flow_runs flow_runs_created" in expected["triggers"]
