"""Migrations: one head; upgrade, downgrade to base and upgrade again on a fresh database."""

from __future__ import annotations

import psycopg
import pytest

from migrations import runner


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_there_is_one_head() -> None:
    assert len(runner.heads()) == 1


def test_upgrade_downgrade_upgrade(scratch_database_url: str) -> None:
    runner.upgrade(scratch_database_url)
    assert {"projects", "jobs", "dead_jobs", "alembic_version"} <= tables(scratch_database_url)
    runner.downgrade(scratch_database_url, "base")
    assert tables(scratch_database_url) == {"alembic_version"}
    runner.upgrade(scratch_database_url)
    assert {"projects", "jobs", "dead_jobs"} <= tables(scratch_database_url)
    with psycopg.connect(scratch_database_url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row == (runner.head(),)


def test_sqlalchemy_url_keeps_socket_hosts() -> None:
    url = "postgresql://postgres:@/sluice?host=/tmp/pg"
    assert runner.sqlalchemy_url(url) == "postgresql+psycopg://postgres:@/sluice?host=/tmp/pg"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        runner.sqlalchemy_url("mysql://x/y")
